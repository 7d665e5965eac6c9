package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox"
)

func TestFakePoolTakeAndRefill(t *testing.T) {
	f := newFakeFactory(t)
	m := newFakeManager(t, f, func(c *sandbox.Config) { c.PoolSize = 2 })
	// The pool boots in parallel: either may be ready first.
	boots := map[string]*fakeSandbox{}
	for _, what := range []string{"pool boot 1", "pool boot 2"} {
		s := recv(t, f.started, what)
		boots[s.ID()] = s
	}
	eventually(t, waitBound, "pool of 2 ready", func() bool { return m.PoolLen() == 2 })
	a := mustCall(t, m, "a")
	b := mustCall(t, m, "b")
	if a.Served != types.ServedPooled || b.Served != types.ServedPooled || boots[a.SandboxID] == nil || boots[b.SandboxID] == nil || a.SandboxID == b.SandboxID {
		t.Fatalf("first calls of a and b: served %s by %s and %s by %s, want pooled by the two pool boots", a.Served, a.SandboxID, b.Served, b.SandboxID)
	}
	p1 := boots[a.SandboxID]
	// The pool refills behind the takes.
	recv(t, f.started, "pool refill 1")
	recv(t, f.started, "pool refill 2")
	if a2 := mustCall(t, m, "a"); a2.Served != types.ServedWarm || a2.SandboxID != p1.ID() {
		t.Fatalf("second call of a: served %s by %s, want warm by %s", a2.Served, a2.SandboxID, p1.ID())
	}
	// A recycled container gets a fresh pooled sandbox, never another's.
	if err := m.Kill(p1.ID()); err != nil {
		t.Fatal(err)
	}
	if !p1.isDestroyed() {
		t.Fatal("killed sandbox not destroyed")
	}
	a3 := mustCall(t, m, "a")
	if a3.Served != types.ServedPooled || boots[a3.SandboxID] != nil {
		t.Fatalf("a after kill: served %s by %s, want pooled by a refill (not %s or %s)", a3.Served, a3.SandboxID, a.SandboxID, b.SandboxID)
	}
	// A container whose memory limit differs from the pool's boots its own.
	m2f := newFakeFactory(t)
	m2 := newFakeManager(t, m2f, func(c *sandbox.Config) {
		c.PoolSize = 1
		c.LimitsFor = func(string) (types.Limits, error) { return types.Limits{MemoryMB: 512}, nil }
	})
	recv(t, m2f.started, "pool boot")
	if c := mustCall(t, m2, "big"); c.Served != types.ServedCold {
		t.Fatalf("container with its own memory limit served %s, want cold", c.Served)
	}
}

// TestFakePoolRefillDeferred: a take that leaves a ready sandbox in the
// pool defers the refill (poolRefillDefer), so that its boot does not
// share the CPUs with the container's first call; the refill follows the
// deferral. A take that empties the pool refills at once.
func TestFakePoolRefillDeferred(t *testing.T) {
	refills := sandbox.DeferPoolRefills(t)
	f := newFakeFactory(t)
	m := newFakeManager(t, f, func(c *sandbox.Config) { c.PoolSize = 2 })
	recv(t, f.started, "pool boot 1")
	recv(t, f.started, "pool boot 2")
	eventually(t, waitBound, "pool ready", func() bool { return m.PoolLen() == 2 && m.PoolBooting() == 0 })
	if c := mustCall(t, m, "a"); c.Served != types.ServedPooled {
		t.Fatalf("first call of a: served %s, want pooled", c.Served)
	}
	wake := recv(t, refills, "the refill deferred by the take")
	f.noMoreStarts(t, "a refill began before the deferral ended")
	// b takes the last ready sandbox: no deferral.
	if c := mustCall(t, m, "b"); c.Served != types.ServedPooled {
		t.Fatalf("first call of b: served %s, want pooled", c.Served)
	}
	recv(t, f.started, "pool refill after the pool emptied")
	select {
	case <-refills:
		t.Fatal("a take that emptied the pool deferred its refill")
	default:
	}
	wake()
	eventually(t, waitBound, "pool refilled", func() bool { return m.PoolLen() >= 2 })
}

func TestFakeEvictsLeastRecentlyUsed(t *testing.T) {
	f := newFakeFactory(t)
	m := newFakeManager(t, f, func(c *sandbox.Config) { c.MaxSandboxes = 2 })
	a := mustCall(t, m, "a")
	b := mustCall(t, m, "b")
	mustCall(t, m, "a") // b is now the least recently used
	c := mustCall(t, m, "c")
	byID := map[string]*fakeSandbox{}
	for range 3 {
		s := recv(t, f.started, "start")
		byID[s.ID()] = s
	}
	if !byID[b.SandboxID].isDestroyed() || byID[a.SandboxID].isDestroyed() || byID[c.SandboxID].isDestroyed() {
		t.Fatalf("after c: a destroyed %v, b %v, c %v; want only b (LRU) evicted",
			byID[a.SandboxID].isDestroyed(), byID[b.SandboxID].isDestroyed(), byID[c.SandboxID].isDestroyed())
	}
	if l := m.List(); len(l) != 2 || l[0].Container != "a" || l[1].Container != "c" {
		t.Fatalf("List after eviction: %+v", l)
	}

	// Busy sandboxes are never evicted: with a and c in flight, d finds no room.
	held := make(chan error, 2)
	for _, name := range []string{"a", "c"} {
		go func() { _, _, err := call(t, m, name, holdURL); held <- err }()
		recv(t, f.entered, "held call of "+name)
	}
	if _, _, err := call(t, m, "d", "/"); !errors.Is(err, sandbox.ErrCapacity) {
		t.Fatalf("d with every sandbox busy: %v, want ErrCapacity", err)
	}
	close(f.release)
	for range 2 {
		if err := recv(t, held, "held call"); err != nil {
			t.Fatalf("held call: %v", err)
		}
	}
	if d := mustCall(t, m, "d"); d.Served != types.ServedCold {
		t.Fatalf("d once idle sandboxes exist: served %s", d.Served)
	}
}

func TestFakeFreezeAndThaw(t *testing.T) {
	f := newFakeFactory(t)
	m := newFakeManager(t, f, nil)
	mustCall(t, m, "a")
	s := recv(t, f.started, "start")

	m.ReapAt(time.Now().Add(30 * time.Minute)) // idle, but not for FreezeAfter
	if s.Paused() {
		t.Fatal("frozen before FreezeAfter")
	}
	m.ReapAt(time.Now().Add(time.Hour + time.Minute))
	if !s.Paused() {
		t.Fatal("not frozen after FreezeAfter")
	}
	if st := m.Status(); st.Sandboxes[types.SandboxPaused] != 1 || st.Sandboxes[types.SandboxRunning] != 0 {
		t.Fatalf("Status: %+v, want one paused sandbox", st.Sandboxes)
	}
	// The next call thaws it first (the fake reports a frozen invoke).
	if c := mustCall(t, m, "a"); c.Served != types.ServedWarm || c.SandboxID != s.ID() {
		t.Fatalf("call after freeze: served %s by %s", c.Served, c.SandboxID)
	}
	if s.Paused() {
		t.Fatal("still frozen after a call")
	}
	// A sandbox with a call in flight is not frozen.
	done := make(chan error, 1)
	go func() { _, _, err := call(t, m, "a", holdURL); done <- err }()
	recv(t, f.entered, "held call")
	m.ReapAt(time.Now().Add(time.Hour + time.Minute))
	if s.Paused() {
		t.Fatal("frozen with a call in flight")
	}
	close(f.release)
	if err := recv(t, done, "held call"); err != nil {
		t.Fatal(err)
	}
}

func TestFakeIdleReaping(t *testing.T) {
	f := newFakeFactory(t)
	m := newFakeManager(t, f, nil)
	mustCall(t, m, "a")
	s := recv(t, f.started, "start")

	// In flight: never reaped, however old.
	done := make(chan error, 1)
	go func() { _, _, err := call(t, m, "a", holdURL); done <- err }()
	recv(t, f.entered, "held call")
	m.ReapAt(time.Now().Add(3 * time.Hour))
	if s.isDestroyed() {
		t.Fatal("reaped with a call in flight")
	}
	close(f.release)
	if err := recv(t, done, "held call"); err != nil {
		t.Fatal(err)
	}

	m.ReapAt(time.Now().Add(2*time.Hour + time.Minute))
	if !s.isDestroyed() {
		t.Fatal("idle sandbox not destroyed after IdleTimeout")
	}
	if l := m.List(); len(l) != 0 {
		t.Fatalf("List after reaping: %+v", l)
	}
	c := mustCall(t, m, "a")
	if c.Served != types.ServedCold || c.SandboxID == s.ID() {
		t.Fatalf("call after reaping: served %s by %s, want a fresh cold sandbox", c.Served, c.SandboxID)
	}
}

func TestFakeConcurrentFirstCallsStartOne(t *testing.T) {
	f := newFakeFactory(t)
	f.gate = make(chan struct{})
	m := newFakeManager(t, f, nil)
	const n = 16
	type result struct {
		c   *sandbox.Call
		err error
	}
	results := make(chan result, n)
	for range n {
		go func() {
			c, _, err := call(t, m, "same", "/")
			results <- result{c, err}
		}()
	}
	close(f.gate) // every call may be waiting on the one start, or not yet arrived
	var id string
	for range n {
		r := recv(t, results, "concurrent call")
		if r.err != nil {
			t.Fatal(r.err)
		}
		if id == "" {
			id = r.c.SandboxID
		}
		if r.c.SandboxID != id {
			t.Fatalf("calls served by %s and %s, want one sandbox", id, r.c.SandboxID)
		}
	}
	recv(t, f.started, "the start")
	f.noMoreStarts(t, "a second sandbox was started")
}

func TestFakeKillFailsCallInFlight(t *testing.T) {
	f := newFakeFactory(t)
	m := newFakeManager(t, f, nil)
	done := make(chan error, 1)
	go func() { _, _, err := call(t, m, "a", holdURL); done <- err }()
	s := recv(t, f.entered, "held call")
	if err := m.Kill(s.ID()); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, done, "killed call"); !errors.Is(err, sandbox.ErrDestroyed) {
		t.Fatalf("call in flight during Kill: %v, want ErrDestroyed", err)
	}
	if err := m.Kill(s.ID()); !errors.Is(err, sandbox.ErrNotFound) {
		t.Fatalf("second Kill: %v, want ErrNotFound", err)
	}
	if c := mustCall(t, m, "a"); c.SandboxID == s.ID() {
		t.Fatal("call after Kill served by the killed sandbox")
	}
}

// TestFakeRaces runs calls against concurrent freezing, reaping, eviction
// and kills; the fakes report a call that reaches a frozen sandbox or
// another container's, and the race detector the rest.
func TestFakeRaces(t *testing.T) {
	f := newFakeFactory(t)
	m := newFakeManager(t, f, func(c *sandbox.Config) {
		c.MaxSandboxes = 2
		c.PoolSize = 1
	})
	const rounds = 200
	var wg sync.WaitGroup
	errs := make(chan error, 4*rounds)
	for _, name := range []string{"a", "b", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				_, _, err := call(t, m, name, "/")
				switch {
				case err == nil, errors.Is(err, sandbox.ErrCapacity), errors.Is(err, sandbox.ErrDestroyed):
					// Capacity: all others busy. Destroyed: killed under the call.
				default:
					errs <- err
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range rounds {
			if i%2 == 0 {
				m.ReapAt(time.Now().Add(time.Hour + time.Minute)) // freeze
			} else {
				m.ReapAt(time.Now().Add(3 * time.Hour)) // reap
			}
			if l := m.List(); len(l) > 0 && i%7 == 0 {
				_ = m.Kill(l[0].ID)
			}
		}
	}()
	go func() { wg.Wait(); close(errs) }()
	for {
		select {
		case err, ok := <-errs:
			if !ok {
				return
			}
			t.Errorf("call: %v", err)
		case <-time.After(waitBound):
			t.Fatal("race rounds did not finish")
		}
	}
}

func TestFakeClose(t *testing.T) {
	f := newFakeFactory(t)
	m := newFakeManager(t, f, func(c *sandbox.Config) { c.PoolSize = 1 })
	pooled := recv(t, f.started, "pool boot")
	mustCall(t, m, "a")
	refill := recv(t, f.started, "pool refill")
	mustCall(t, m, "b")
	cold := recv(t, f.started, "cold start of b")
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*fakeSandbox{pooled, refill, cold} {
		if !s.isDestroyed() {
			t.Errorf("sandbox %s (%s) survived Close", s.ID(), s.Info().Container)
		}
	}
	if _, _, err := call(t, m, "a", "/"); !errors.Is(err, sandbox.ErrClosed) {
		t.Fatalf("Invoke after Close: %v, want ErrClosed", err)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestFakeRecycleWaitsForCallsInFlight(t *testing.T) {
	f := newFakeFactory(t)
	m := newFakeManager(t, f, nil)
	done := make(chan error, 1)
	go func() { _, _, err := call(t, m, "a", holdURL); done <- err }()
	s := recv(t, f.entered, "held call")
	m.Recycle("a")
	if s.isDestroyed() {
		t.Fatal("Recycle destroyed the sandbox under a call in flight")
	}
	if c := mustCall(t, m, "a"); c.SandboxID == s.ID() {
		t.Fatal("call after Recycle served by the old sandbox")
	}
	close(f.release)
	if err := recv(t, done, "held call"); err != nil {
		t.Fatalf("call in flight during Recycle: %v", err)
	}
	if !s.isDestroyed() {
		t.Fatal("old sandbox not destroyed when its last call returned")
	}
}

func TestFakeQueueFullIsBusy(t *testing.T) {
	f := newFakeFactory(t)
	m := newFakeManager(t, f, func(c *sandbox.Config) {
		c.MaxConcurrency = 1
		c.QueueTimeout = time.Millisecond
	})
	done := make(chan error, 1)
	go func() { _, _, err := call(t, m, "a", holdURL); done <- err }()
	recv(t, f.entered, "held call")
	c, _, err := call(t, m, "a", "/")
	if !errors.Is(err, sandbox.ErrBusy) {
		t.Fatalf("call past MaxConcurrency: %v, want ErrBusy", err)
	}
	if c == nil || c.Served != types.ServedWarm || c.SandboxID == "" {
		t.Fatalf("busy call: %+v, want it to tell the warm sandbox it queued for", c)
	}
	close(f.release)
	if err := recv(t, done, "held call"); err != nil {
		t.Fatal(err)
	}
}

// TestFakeRetryAfterFrozenDeath: a runtime killed while frozen dies at the
// thaw; the call that thawed it never reached user code and is retried,
// once, on a fresh sandbox.
func TestFakeRetryAfterFrozenDeath(t *testing.T) {
	f := newFakeFactory(t)
	m := newFakeManager(t, f, nil)
	first := mustCall(t, m, "a")
	s := recv(t, f.started, "start")
	m.ReapAt(time.Now().Add(time.Hour + time.Minute))
	if !s.Paused() {
		t.Fatal("not frozen after FreezeAfter")
	}
	s.killWhileFrozen()
	c := mustCall(t, m, "a")
	if c.SandboxID == first.SandboxID || c.Served != types.ServedCold {
		t.Fatalf("call after a death while frozen: served %s by %s, want a fresh cold sandbox (old %s)", c.Served, c.SandboxID, first.SandboxID)
	}
	if !s.isDestroyed() {
		t.Fatal("the dead sandbox was not destroyed")
	}
	fresh := recv(t, f.started, "fresh start")
	if fresh.ID() != c.SandboxID {
		t.Fatalf("retry served by %s, the fresh start is %s", c.SandboxID, fresh.ID())
	}

	// Only once: a sandbox found dead again fails the call.
	_, _, err := call(t, m, "b", deadURL)
	if !errors.Is(err, sandbox.ErrCrashed) {
		t.Fatalf("call whose sandboxes are always dead: %v, want ErrCrashed", err)
	}
	recv(t, f.started, "b's first sandbox")
	recv(t, f.started, "b's retry sandbox")
	f.noMoreStarts(t, "a third sandbox was started: retried more than once")

	// A runtime that died running the webtask is not retried (the code ran).
	_, _, err = call(t, m, "c", crashURL)
	if !errors.Is(err, sandbox.ErrCrashed) {
		t.Fatalf("crashing call: %v, want ErrCrashed", err)
	}
	recv(t, f.started, "c's sandbox")
	f.noMoreStarts(t, "a crash in user code was retried")
}

// TestFakeRetryConcurrentCallsAfterFrozenDeath: every call waiting on a
// sandbox that died while frozen gets a fresh one.
func TestFakeRetryConcurrentCallsAfterFrozenDeath(t *testing.T) {
	f := newFakeFactory(t)
	m := newFakeManager(t, f, nil)
	mustCall(t, m, "a")
	s := recv(t, f.started, "start")
	m.ReapAt(time.Now().Add(time.Hour + time.Minute))
	s.killWhileFrozen()
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			c, body, err := call(t, m, "a", "/")
			if err == nil && (c.SandboxID == s.ID() || body != c.SandboxID) {
				err = fmt.Errorf("served by %s (body %q), the dead sandbox is %s", c.SandboxID, body, s.ID())
			}
			errs <- err
		}()
	}
	for range n {
		if err := recv(t, errs, "concurrent call"); err != nil {
			t.Error(err)
		}
	}
}

// TestFakeExternalFreezeThawed: a sandbox frozen from outside with a call
// waiting is thawed by the reaper, well before the exec timeout.
func TestFakeExternalFreezeThawed(t *testing.T) {
	f := newFakeFactory(t)
	m := newFakeManager(t, f, nil)
	mustCall(t, m, "a")
	s := recv(t, f.started, "start")
	s.freezeExternally()
	done := make(chan error, 1)
	go func() { _, _, err := call(t, m, "a", "/"); done <- err }()
	recv(t, f.frozenWait, "call waiting on the external freeze")
	m.ReapAt(time.Now().Add(2 * time.Second))
	if err := recv(t, done, "call after the thaw"); err != nil {
		t.Fatal(err)
	}
	if s.isDestroyed() {
		t.Fatal("the thawed sandbox was destroyed")
	}
}

func TestPoolTarget(t *testing.T) {
	now := time.Now()
	every := func(n int, gap time.Duration) []time.Time {
		var d []time.Time
		for i := range n {
			d = append(d, now.Add(-time.Duration(n-1-i)*gap))
		}
		return d
	}
	for _, c := range []struct {
		name    string
		demands []time.Time
		boot    time.Duration
		bound   int
		want    int
	}{
		{"no demand: the configured size", nil, 100 * time.Millisecond, 64, 2},
		{"one arrival is no rate", every(1, 0), 100 * time.Millisecond, 64, 2},
		{"a few slow arrivals: the configured size", every(3, 500*time.Millisecond), 100 * time.Millisecond, 64, 2},
		{"20/s, boots of 100 ms: 20 in 950 ms over a 200 ms lead, on top", every(20, 50*time.Millisecond), 100 * time.Millisecond, 64, 6},
		{"20/s, boots of 300 ms", every(20, 50*time.Millisecond), 300 * time.Millisecond, 64, 14},
		{"a sudden burst: all of it on top, never more", every(5, time.Millisecond), 100 * time.Millisecond, 64, 7},
		{"bounded", every(20, time.Millisecond), 100 * time.Millisecond, 3, 5},
		{"no room", every(20, time.Millisecond), 100 * time.Millisecond, 0, 2},
	} {
		if got := sandbox.PoolTarget(2, c.demands, now, c.boot, c.bound); got != c.want {
			t.Errorf("%s: target %d, want %d", c.name, got, c.want)
		}
	}
}

// TestFakePoolWaiterTakesBootInFlight: a never-seen container that finds
// the pool empty takes the first pooled sandbox to finish booting; it
// never waits for a boot of its own when another ends first.
func TestFakePoolWaiterTakesBootInFlight(t *testing.T) {
	f := newFakeFactory(t)
	f.gate = make(chan struct{})
	m := newFakeManager(t, f, func(c *sandbox.Config) { c.PoolSize = 1 })
	got := make(chan *sandbox.Call, 1)
	go func() { got <- mustCall(t, m, "a") }()
	eventually(t, waitBound, "the call waiting for a pooled sandbox", func() bool { return m.PoolWaiters() == 1 })
	// The pool's boot began before the call; let exactly one boot end.
	select {
	case f.gate <- struct{}{}:
	case <-time.After(waitBound):
		t.Fatal("no boot waiting")
	}
	first := recv(t, f.started, "first boot to end")
	c := recv(t, got, "call of a")
	if c.SandboxID != first.ID() || c.Served != types.ServedCold {
		t.Fatalf("a served %s by %s, want cold (it waited) by the first boot to end, %s", c.Served, c.SandboxID, first.ID())
	}
	close(f.gate) // let the rest end for Close
}

// TestFakePoolGrowsWithBurstAndShrinks: never-seen containers arriving
// faster than the pool refills raise its target; without them for a while
// the pool shrinks back to PoolSize, destroying the extra sandboxes.
func TestFakePoolGrowsWithBurstAndShrinks(t *testing.T) {
	f := newFakeFactory(t)
	m := newFakeManager(t, f, func(c *sandbox.Config) { c.PoolSize = 1 })
	recv(t, f.started, "pool boot")
	const burst = 8
	for i := range burst {
		mustCall(t, m, fmt.Sprintf("c%d", i))
	}
	if st := m.Status(); st.PoolTarget < burst {
		t.Fatalf("pool target after a burst of %d: %d, want at least %d", burst, st.PoolTarget, burst)
	}
	eventually(t, waitBound, "pool grown", func() bool { return m.PoolLen() >= burst })
	// Settled: no boot in flight that would add a sandbox after the shrink
	// (the target only falls without new containers).
	eventually(t, waitBound, "pool settled", func() bool {
		return m.PoolBooting() == 0 && m.PoolLen() >= m.Status().PoolTarget
	})
	m.ReapAt(time.Now().Add(time.Minute)) // a minute without new containers
	if n := m.PoolLen(); n != 1 {
		t.Fatalf("pool after a quiet minute: %d ready, want 1", n)
	}
	f.mu.Lock()
	destroyed := 0
	for _, s := range f.all {
		if s.Info().Container == "" && s.isDestroyed() {
			destroyed++
		}
	}
	f.mu.Unlock()
	if destroyed < burst-1 {
		t.Fatalf("%d pooled sandboxes destroyed by the shrink, want at least %d", destroyed, burst-1)
	}
	if st := m.Status(); st.PoolTarget != 1 {
		t.Fatalf("pool target after the shrink: %d, want 1", st.PoolTarget)
	}
}

// TestFakePoolGrowthBoundedByMaxSandboxes: the pool never grows past what
// MaxSandboxes leaves to assign.
func TestFakePoolGrowthBoundedByMaxSandboxes(t *testing.T) {
	f := newFakeFactory(t)
	m := newFakeManager(t, f, func(c *sandbox.Config) {
		c.PoolSize = 1
		c.MaxSandboxes = 6
	})
	for i := range 5 {
		mustCall(t, m, fmt.Sprintf("c%d", i))
	}
	// 5 assigned of 6: one more may be assigned, the configured pool holds it.
	if st := m.Status(); st.PoolTarget != 1 {
		t.Fatalf("pool target with 5 of 6 sandboxes assigned: %d, want 1", st.PoolTarget)
	}
}

// TestFakePoolBootsBoundedOverdueWaiterGetsOne: the pool's boots are
// bounded, waiting containers included; a container still waiting after
// half the start timeout gets a boot of its own beyond the bound.
func TestFakePoolBootsBoundedOverdueWaiterGetsOne(t *testing.T) {
	sandbox.SetPoolMaxBooting(t, 1)
	f := newFakeFactory(t)
	f.gate = make(chan struct{})
	m := newFakeManager(t, f, func(c *sandbox.Config) {
		c.PoolSize = 1
		c.StartTimeout = 2 * time.Second
	})
	got := make(chan *sandbox.Call, 2)
	for _, name := range []string{"a", "b"} {
		go func() { got <- mustCall(t, m, name) }()
	}
	eventually(t, waitBound, "two containers waiting", func() bool { return m.PoolWaiters() == 2 })
	if n := f.booting.Load(); n != 1 {
		t.Fatalf("%d boots under way with two waiters and a bound of 1, want 1", n)
	}
	// Past half the start timeout both are overdue: a boot each.
	eventually(t, waitBound, "a boot for each overdue waiter", func() bool { return f.booting.Load() == 3 })
	close(f.gate)
	for range 2 {
		if c := recv(t, got, "call of a waiter"); c.Served != types.ServedCold {
			t.Fatalf("a waiter was served %s, want cold", c.Served)
		}
	}
}
