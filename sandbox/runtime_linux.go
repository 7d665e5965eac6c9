package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/runc/libcontainer"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// crashReasonWait bounds how long a failed call waits for the exit reason
// (OOM or crash) of a runtime whose channel closed.
const crashReasonWait = 5 * time.Second

// lcSandbox is the libcontainer implementation of Sandbox: its runtime
// is a libcontainer container whose init is tini, then the Node agent.
type lcSandbox struct {
	id         string
	createdAt  time.Time
	log        *slog.Logger
	onLog      func(container string, line agent.LogLine)
	bootLimits types.Limits // the limits the sandbox booted with

	rt   *libcontainer.Container
	proc *libcontainer.Process
	pid  int // tini, the sandbox's init (host pid)
	// nodePid is node, tini's child (host pid; 0 when unknown).
	nodePid int
	client  *agent.Client
	cg      *sandboxCgroup // nil when the cgroup could not be loaded

	done      chan struct{} // closed when the runtime exited
	exitErr   error         // ErrDestroyed, ErrOOM or ErrCrashed; written before done closes
	destroyed atomic.Bool

	cleanupOnce sync.Once
	cleanupErr  error

	mu          sync.Mutex
	container   string // the webtask container served; "" while pooled
	served      types.Served
	limits      types.Limits
	paused      bool
	frozenDeath error // set by Resume when the runtime died while frozen
	lastUsedAt  time.Time
	invocations uint64
	inFlight    int
}

var _ Sandbox = (*lcSandbox)(nil)

func (s *lcSandbox) ID() string            { return s.id }
func (s *lcSandbox) Done() <-chan struct{} { return s.done }

// Err tells why the runtime exited; valid once Done is closed.
func (s *lcSandbox) Err() error { return s.exitErr }

// owner returns the webtask container the sandbox serves ("" while
// pooled).
func (s *lcSandbox) owner() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.container
}

// emit forwards user output to OnLog with the container served now.
func (s *lcSandbox) emit(l agent.LogLine) {
	if s.onLog == nil {
		return
	}
	if owner := s.owner(); owner != "" {
		s.onLog(owner, l)
	}
}

// Assign gives a pooled sandbox to a webtask container: it gives it the
// default CPU weight (it booted at the lowest) and applies the
// container's CPU and pids limits to the sandbox's cgroup when they differ
// from those it booted with (its memory limit, and V8's heap limit that
// follows it, are fixed at boot: the Manager only assigns a pooled
// sandbox whose memory limit matches). A sandbox is assigned at most once.
func (s *lcSandbox) Assign(container string, l types.Limits) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.container != "" {
		return fmt.Errorf("sandbox %s already serves container %q", s.id, s.container)
	}
	if l.MemoryMB != s.bootLimits.MemoryMB {
		return fmt.Errorf("sandbox %s booted with %d MiB, container %q needs %d MiB", s.id, s.bootLimits.MemoryMB, container, l.MemoryMB)
	}
	if s.cg == nil {
		return fmt.Errorf("sandbox %s: applying limits: no cgroup", s.id)
	}
	// Only a pooled sandbox gets here: it booted at the lowest CPU weight.
	if err := s.cg.foreground(); err != nil {
		return fmt.Errorf("sandbox %s: CPU weight: %w", s.id, err)
	}
	if l.CPUs != s.limits.CPUs || l.Pids != s.limits.Pids {
		if err := s.cg.update(l); err != nil {
			return fmt.Errorf("sandbox %s: applying limits: %w", s.id, err)
		}
		if err := s.setNprocLimit(l.Pids); err != nil {
			return fmt.Errorf("sandbox %s: applying limits: %w", s.id, err)
		}
	}
	s.container, s.limits, s.served = container, l, types.ServedPooled
	return nil
}

// Stats reads the sandbox's cgroup figures.
func (s *lcSandbox) Stats() (*types.CgroupStats, error) {
	if s.cg == nil {
		return nil, errors.New("no cgroup")
	}
	return s.cg.stats()
}

// Invoke runs one invocation in the warm runtime.
func (s *lcSandbox) Invoke(ctx context.Context, req *agent.Request, timeout time.Duration) (*agent.Response, error) {
	if s.destroyed.Load() {
		return nil, fmt.Errorf("%w (%w)", ErrDestroyed, ErrNotReached)
	}
	select {
	case <-s.done:
		return nil, fmt.Errorf("%w (%w)", s.exitErr, ErrNotReached)
	default:
	}
	s.mu.Lock()
	s.inFlight++
	s.invocations++
	s.lastUsedAt = time.Now()
	s.mu.Unlock()
	done := func() {
		s.mu.Lock()
		s.inFlight--
		s.lastUsedAt = time.Now()
		s.mu.Unlock()
	}
	resp, err := s.client.DoTimeout(ctx, req, timeout)
	if err == nil && resp.Stream != nil {
		// In flight until its body is closed.
		resp.Stream.AfterClose(done)
		return resp, nil
	}
	defer done()
	if err == nil {
		return resp, nil
	}
	if errors.Is(err, agent.ErrRequestBody) {
		return nil, err // the caller's body failed (too large, gone), not the runtime
	}
	if errors.Is(err, agent.ErrTimeout) {
		return nil, fmt.Errorf("sandbox %s: %w", s.id, ErrTimeout)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("sandbox %s: %w", s.id, context.Cause(ctx))
	}
	// The channel failed: the runtime most likely died. Report why.
	t := time.NewTimer(crashReasonWait)
	defer t.Stop()
	select {
	case <-s.done:
		return nil, s.exitErr
	case <-t.C:
		return nil, fmt.Errorf("%w: %w", ErrCrashed, err)
	}
}

// Info reports the sandbox's state and figures.
func (s *lcSandbox) Info() types.SandboxInfo {
	s.mu.Lock()
	info := types.SandboxInfo{
		ID:          s.id,
		Container:   s.container,
		Served:      s.served,
		Pid:         s.pid,
		State:       types.SandboxRunning,
		CreatedAt:   s.createdAt,
		LastUsedAt:  s.lastUsedAt,
		Invocations: s.invocations,
		InFlight:    s.inFlight,
		Limits:      s.limits,
	}
	switch {
	case s.paused:
		info.State = types.SandboxPaused
	case s.container == "":
		info.State = types.SandboxPooled
	}
	s.mu.Unlock()
	select {
	case <-s.done:
		info.State = types.SandboxDestroyed
		return info
	default:
	}
	if s.destroyed.Load() {
		info.State = types.SandboxDestroyed
		return info
	}
	if s.cg != nil {
		info.MemoryBytes, _ = s.cg.memoryUsage()
	}
	return info
}
