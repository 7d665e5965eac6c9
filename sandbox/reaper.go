package sandbox

import (
	"errors"
	"fmt"
	"time"
)

// strayFreezeAfter: a sandbox busy this long whose calls have not all
// returned is checked for a freeze it did not make (reap).
const strayFreezeAfter = time.Second

// reaper ticks reap: often enough to honour FreezeAfter and IdleTimeout
// within a quarter of the shorter one, and at least every
// strayFreezeAfter.
func (m *Manager) reaper() {
	defer close(m.reaperDone)
	every := m.cfg.IdleTimeout
	if m.cfg.FreezeAfter > 0 {
		every = min(every, m.cfg.FreezeAfter)
	}
	interval := min(max(every/4, 20*time.Millisecond), strayFreezeAfter)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			m.reap(now)
		}
	}
}

// reap destroys the sandboxes idle (no call in flight) since IdleTimeout
// before now, freezes those idle since FreezeAfter, and thaws those busy
// since strayFreezeAfter that were frozen from outside (their callers
// would otherwise wait for the exec timeout).
func (m *Manager) reap(now time.Time) {
	var idle, freeze, busy []*entry
	m.mu.Lock()
	for name, e := range m.entries {
		if e.sb == nil {
			continue
		}
		if e.inFlight > 0 {
			if now.Sub(e.busySince) >= strayFreezeAfter && !e.sb.Paused() {
				busy = append(busy, e)
			}
			continue
		}
		switch since := now.Sub(e.lastUsedAt); {
		case since >= m.cfg.IdleTimeout:
			delete(m.entries, name)
			m.dying[e.sb] = struct{}{}
			idle = append(idle, e)
		case m.cfg.FreezeAfter > 0 && since >= m.cfg.FreezeAfter && !e.sb.Paused():
			freeze = append(freeze, e)
		}
	}
	m.mu.Unlock()
	for _, e := range idle {
		m.log.Info("destroying idle sandbox", "container", e.container, "sandbox", e.sb.ID())
		m.destroy(e.sb)
	}
	for _, e := range freeze {
		m.freeze(e)
	}
	for _, e := range busy {
		m.thawExternal(e)
	}
	m.shrinkPool(now)
}

// thawExternal thaws e's sandbox if something outside froze it.
func (m *Manager) thawExternal(e *entry) {
	e.fmu.Lock()
	defer e.fmu.Unlock()
	thawed, err := e.sb.ThawExternal()
	switch {
	case err != nil && !errors.Is(err, ErrDestroyed):
		m.log.Warn("checking a busy sandbox's freezer", "sandbox", e.sb.ID(), "err", err)
	case thawed:
		m.log.Warn("sandbox was frozen from outside with calls in flight; thawed it", "container", e.container, "sandbox", e.sb.ID())
	}
}

// freeze pauses e's sandbox unless a call arrived meanwhile. A call counts
// itself in flight (under mu) before it thaws (under fmu); freeze checks
// inFlight while holding fmu, so either it sees the call and skips, or
// the call's thaw waits for the freeze and undoes it.
func (m *Manager) freeze(e *entry) {
	e.fmu.Lock()
	defer e.fmu.Unlock()
	m.mu.Lock()
	busy := e.inFlight > 0 || m.entries[e.container] != e
	m.mu.Unlock()
	if busy {
		return
	}
	if err := e.sb.Pause(); err != nil && !errors.Is(err, ErrDestroyed) {
		m.log.Warn("freezing idle sandbox", "sandbox", e.sb.ID(), "err", err)
	}
}

// makeRoom evicts the least recently used idle sandboxes while more than
// MaxSandboxes entries exist (e included); ErrCapacity when none is idle.
func (m *Manager) makeRoom(e *entry) error {
	if m.cfg.MaxSandboxes == 0 {
		return nil
	}
	var victims []*entry
	m.mu.Lock()
	for len(m.entries) > m.cfg.MaxSandboxes {
		var lru *entry
		for _, o := range m.entries {
			if o == e || o.sb == nil || o.inFlight > 0 {
				continue
			}
			if lru == nil || o.lastUsedAt.Before(lru.lastUsedAt) {
				lru = o
			}
		}
		if lru == nil {
			m.mu.Unlock()
			for _, v := range victims {
				m.destroy(v.sb)
			}
			return fmt.Errorf("%w (%d sandboxes, all busy)", ErrCapacity, m.cfg.MaxSandboxes)
		}
		delete(m.entries, lru.container)
		m.dying[lru.sb] = struct{}{}
		victims = append(victims, lru)
	}
	m.mu.Unlock()
	for _, v := range victims {
		m.met.evictions.Inc()
		m.log.Info("evicting least recently used sandbox", "container", v.container, "sandbox", v.sb.ID())
		m.destroy(v.sb)
	}
	return nil
}
