package sandbox_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox"
	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// The fakes below stand in for libcontainer sandboxes so that the
// Manager's logic (pool, eviction, freezing, reaping, singleflight,
// Close) is tested as a normal user, with -race, without sleeping.

// waitBound bounds every wait of the fake tests.
const waitBound = 10 * time.Second

// holdURL makes a fake invocation block until the factory releases it.
const holdURL = "/hold"

// deadURL makes a fake invocation fail as if its sandbox had been found
// dead before the request was sent (ErrCrashed, ErrNotReached); crashURL
// as if the runtime died running the webtask (ErrCrashed).
const (
	deadURL  = "/dead"
	crashURL = "/crash"
)

// fakeFactory is a Config.NewSandbox that makes fakeSandboxes and checks
// the rules the Manager must keep.
type fakeFactory struct {
	t       testing.TB
	started chan *fakeSandbox // every start, in order (buffered)
	entered chan *fakeSandbox // an invocation to holdURL began
	// frozenWait: an invocation waits for an external freeze to end
	frozenWait chan *fakeSandbox
	release    chan struct{} // closing it ends every held invocation
	gate       chan struct{} // when non-nil, starts wait for it
	booting    atomic.Int32  // starts under way (waiting for gate included)

	mu         sync.Mutex
	n          int
	all        []*fakeSandbox
	violations []string
}

func newFakeFactory(t testing.TB) *fakeFactory {
	return &fakeFactory{
		t:          t,
		started:    make(chan *fakeSandbox, 64),
		entered:    make(chan *fakeSandbox, 64),
		frozenWait: make(chan *fakeSandbox, 64),
		release:    make(chan struct{}),
	}
}

func (f *fakeFactory) violate(format string, a ...any) {
	f.mu.Lock()
	f.violations = append(f.violations, fmt.Sprintf(format, a...))
	f.mu.Unlock()
}

func (f *fakeFactory) New(ctx context.Context, o sandbox.StartOptions) (sandbox.Sandbox, error) {
	f.booting.Add(1)
	defer f.booting.Add(-1)
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", sandbox.ErrStart, ctx.Err())
		}
	}
	f.mu.Lock()
	f.n++
	s := &fakeSandbox{f: f, id: fmt.Sprintf("fake-%d", f.n), container: o.Container, limits: o.Limits,
		served: map[string]bool{}, done: make(chan struct{})}
	f.all = append(f.all, s)
	f.mu.Unlock()
	f.started <- s
	return s, nil
}

// check fails the test on any broken rule, and when a sandbox served more
// than one container.
func (f *fakeFactory) check() {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.violations {
		f.t.Error(v)
	}
	for _, s := range f.all {
		s.mu.Lock()
		if len(s.served) > 1 {
			f.t.Errorf("sandbox %s served %d containers: %v", s.id, len(s.served), s.served)
		}
		s.mu.Unlock()
	}
}

type fakeSandbox struct {
	f  *fakeFactory
	id string

	mu          sync.Mutex
	container   string
	limits      types.Limits
	served      map[string]bool
	paused      bool
	destroyed   bool
	invocations int
	done        chan struct{}
	// killedFrozen: the runtime was killed while frozen and dies at the
	// next thaw; frozenDeath is then what Resume returns.
	killedFrozen bool
	frozenDeath  error
	// foreign, when non-nil, is a freeze made from outside: invocations
	// wait until ThawExternal closes it.
	foreign chan struct{}
}

func (s *fakeSandbox) ID() string            { return s.id }
func (s *fakeSandbox) Done() <-chan struct{} { return s.done }
func (s *fakeSandbox) Err() error            { return sandbox.ErrDestroyed }

func (s *fakeSandbox) Invoke(ctx context.Context, req *agent.Request, _ time.Duration) (*agent.Response, error) {
	s.mu.Lock()
	if s.destroyed {
		s.mu.Unlock()
		return nil, sandbox.ErrDestroyed
	}
	if s.paused {
		s.f.violate("sandbox %s invoked while frozen", s.id)
	}
	if req.Container != s.container {
		s.f.violate("sandbox %s of %q invoked for %q", s.id, s.container, req.Container)
	}
	s.served[req.Container] = true
	s.invocations++
	foreign := s.foreign
	s.mu.Unlock()
	if foreign != nil {
		s.f.frozenWait <- s
		select {
		case <-foreign:
		case <-s.done:
			return nil, sandbox.ErrDestroyed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	switch req.URL {
	case deadURL: // found dead before sending, every time
		_ = s.Destroy()
		return nil, fmt.Errorf("%w (%w)", sandbox.ErrCrashed, sandbox.ErrNotReached)
	case crashURL: // died running the webtask
		_ = s.Destroy()
		return nil, sandbox.ErrCrashed
	}
	if req.URL == holdURL {
		s.f.entered <- s
		select {
		case <-s.f.release:
		case <-s.done:
			return nil, sandbox.ErrDestroyed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &agent.Response{Status: 200, Body: []byte(s.id)}, nil
}

func (s *fakeSandbox) Assign(container string, l types.Limits) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.container != "" {
		s.f.violate("pooled sandbox %s of %q assigned again to %q", s.id, s.container, container)
		return fmt.Errorf("sandbox %s already serves %q", s.id, s.container)
	}
	s.container, s.limits = container, l
	return nil
}

func (s *fakeSandbox) Pause() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return sandbox.ErrDestroyed
	}
	s.paused = true
	return nil
}

func (s *fakeSandbox) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozenDeath != nil {
		return s.frozenDeath
	}
	if s.destroyed {
		return sandbox.ErrDestroyed
	}
	if s.paused && s.killedFrozen {
		// The runtime dies at the thaw, as a frozen runtime SIGKILLed does.
		s.paused, s.destroyed = false, true
		close(s.done)
		s.frozenDeath = fmt.Errorf("%w (killed while frozen; %w)", sandbox.ErrCrashed, sandbox.ErrNotReached)
		return s.frozenDeath
	}
	s.paused = false
	return nil
}

// killWhileFrozen makes the runtime die at its next thaw.
func (s *fakeSandbox) killWhileFrozen() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killedFrozen = true
}

// freezeExternally freezes the sandbox behind the Manager's back.
func (s *fakeSandbox) freezeExternally() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.foreign = make(chan struct{})
}

func (s *fakeSandbox) ThawExternal() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return false, sandbox.ErrDestroyed
	}
	if s.foreign == nil {
		return false, nil
	}
	close(s.foreign)
	s.foreign = nil
	return true, nil
}

func (s *fakeSandbox) Paused() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused
}

func (s *fakeSandbox) Destroy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.destroyed {
		s.destroyed = true
		close(s.done)
	}
	return nil
}

func (s *fakeSandbox) isDestroyed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.destroyed
}

func (s *fakeSandbox) Info() types.SandboxInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := types.SandboxInfo{ID: s.id, Container: s.container, Limits: s.limits, Invocations: uint64(s.invocations), State: types.SandboxRunning}
	switch {
	case s.destroyed:
		info.State = types.SandboxDestroyed
	case s.paused:
		info.State = types.SandboxPaused
	case s.container == "":
		info.State = types.SandboxPooled
	}
	return info
}

func (s *fakeSandbox) Stats() (*types.CgroupStats, error) { return &types.CgroupStats{}, nil }

// newFakeManager returns a Manager over f's fakes; freezing and reaping
// happen only through ReapAt (the reaper's ticker would need an hour).
func newFakeManager(t testing.TB, f *fakeFactory, mutate func(*sandbox.Config)) *sandbox.Manager {
	t.Helper()
	t.Cleanup(f.check) // after Close, which openManager registers next
	return openManager(t, sandbox.Config{
		StateDir:    "/nonexistent/webtaskd-fake",
		NewSandbox:  f.New,
		FreezeAfter: time.Hour,
		IdleTimeout: 2 * time.Hour,
	}, mutate)
}

// call invokes container and returns the Call and its body.
func call(t testing.TB, m *sandbox.Manager, container, url string) (*sandbox.Call, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	c, err := m.Invoke(ctx, container, &agent.Request{ReqID: "r", URL: url})
	if err != nil {
		return c, "", err
	}
	b, err := io.ReadAll(c.Body)
	_ = c.Body.Close()
	return c, string(b), err
}

func mustCall(t testing.TB, m *sandbox.Manager, container string) *sandbox.Call {
	t.Helper()
	c, body, err := call(t, m, container, "/")
	if err != nil {
		t.Fatalf("invoke %s: %v", container, err)
	}
	if c.Status != 200 || body != c.SandboxID {
		t.Fatalf("invoke %s: status %d body %q, want 200 and the sandbox id %q", container, c.Status, body, c.SandboxID)
	}
	return c
}

// noMoreStarts fails the test with msg if a sandbox start is pending on
// f.started (the expected ones must have been received).
func (f *fakeFactory) noMoreStarts(t testing.TB, msg string) {
	t.Helper()
	select {
	case s := <-f.started:
		t.Fatalf("%s (%s)", msg, s.ID())
	default:
	}
}

// recv returns the next value of ch, failing after waitBound.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitBound):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}
