package sandbox

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/webtaskd/webtaskd/api/types"
)

// List reports every sandbox assigned to a container, ordered by
// container (pooled sandboxes are counted in Status and reachable by
// Inspect). A reaped or evicted sandbox is listed (as destroyed) until it
// is gone.
func (m *Manager) List() []types.SandboxInfo {
	m.mu.Lock()
	var sbs []Sandbox
	for _, e := range m.entries {
		if e.sb != nil {
			sbs = append(sbs, e.sb)
		}
	}
	for sb := range m.dying {
		sbs = append(sbs, sb)
	}
	m.mu.Unlock()
	out := make([]types.SandboxInfo, 0, len(sbs))
	for _, sb := range sbs {
		out = append(out, sb.Info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Container < out[j].Container })
	return out
}

// find returns the live sandbox with id, assigned or pooled.
func (m *Manager) find(id string) Sandbox {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.entries {
		if e.sb != nil && e.sb.ID() == id {
			return e.sb
		}
	}
	for _, sb := range m.pool {
		if sb.ID() == id {
			return sb
		}
	}
	return nil
}

// Inspect reports one sandbox (assigned or pooled) with its cgroup
// figures: memory and CPU usage, pids, OOM kills.
func (m *Manager) Inspect(id string) (types.SandboxInfo, error) {
	sb := m.find(id)
	if sb == nil {
		return types.SandboxInfo{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	info := sb.Info()
	st, err := sb.Stats()
	if err != nil {
		return info, fmt.Errorf("sandbox %s: cgroup stats: %w", id, err)
	}
	info.Cgroup = st
	return info, nil
}

// Status reports pool and sandbox counts and the parent cgroup's figures.
func (m *Manager) Status() types.FleetStatus {
	st := types.FleetStatus{
		PoolTarget:   m.poolTargetNow(),
		MaxSandboxes: m.cfg.MaxSandboxes,
		Sandboxes:    map[types.SandboxState]int{types.SandboxPooled: 0, types.SandboxRunning: 0, types.SandboxPaused: 0},
	}
	m.mu.Lock()
	st.PoolReady = len(m.pool)
	st.Sandboxes[types.SandboxPooled] = len(m.pool)
	for _, e := range m.entries {
		if e.sb == nil {
			continue
		}
		if e.sb.Paused() {
			st.Sandboxes[types.SandboxPaused]++
		} else {
			st.Sandboxes[types.SandboxRunning]++
		}
	}
	m.mu.Unlock()
	if m.host != nil {
		if fs, err := m.host.fleet.stats(); err == nil {
			st.Fleet = &fs
		}
	}
	return st
}

// Kill destroys the sandbox with the given id (assigned or pooled; not the
// container name). Calls in flight fail with ErrDestroyed.
func (m *Manager) Kill(id string) error {
	m.mu.Lock()
	var found Sandbox
	for name, e := range m.entries {
		if e.sb != nil && e.sb.ID() == id {
			found = e.sb
			delete(m.entries, name)
			break
		}
	}
	if found == nil {
		found = m.dropPooledLocked(id)
	}
	m.mu.Unlock()
	if found == nil {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return found.Destroy()
}

// Close stops the reaper and the pool filler, destroys every sandbox
// (bounded by ctx) and, for libcontainer sandboxes, removes CgroupParent.
// Invoke fails with ErrClosed afterwards.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	var all []*entry
	for _, e := range m.entries {
		all = append(all, e)
	}
	m.entries = map[string]*entry{}
	pool := m.pool
	m.pool = nil
	m.mu.Unlock()
	close(m.stop)
	<-m.reaperDone
	<-m.poolDone // bounded by StartTimeout

	errs := make(chan error, len(all)+len(pool))
	for _, e := range all {
		go func() {
			select {
			case <-e.ready:
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			}
			if e.sb == nil {
				errs <- nil
				return
			}
			errs <- e.sb.Destroy()
		}()
	}
	for _, sb := range pool {
		go func() { errs <- sb.Destroy() }()
	}
	var errList []error
	for range len(all) + len(pool) {
		select {
		case err := <-errs:
			if err != nil {
				errList = append(errList, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("sandbox: close: %w", ctx.Err())
		}
	}
	m.watchers.Wait()
	if m.host != nil {
		if err := m.host.close(); err != nil {
			errList = append(errList, err)
		}
	}
	return errors.Join(errList...)
}

// Ready reports whether the manager takes calls: nil until Close, then
// ErrClosed.
func (m *Manager) Ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return nil
}
