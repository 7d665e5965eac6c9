package sandbox

import (
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// fakeTimer is an armed linger of fakeProcs: fire runs it.
type fakeTimer struct {
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool { was := !t.stopped; t.stopped = true; return was }

// fakeProcs is a syscallProcs whose GOMAXPROCS is a plain number and
// whose lingers fire when the test says.
type fakeProcs struct {
	*syscallProcs
	n, resets int
	timers    []*fakeTimer
}

func newFakeProcs(base, extra int) *fakeProcs {
	f := &fakeProcs{n: base}
	f.syscallProcs = &syscallProcs{
		extra:  extra,
		linger: time.Second,
		get:    func() int { return f.n },
		set:    func(v int) { f.n = v },
		reset:  func() { f.n = base; f.resets++ },
		afterFunc: func(_ time.Duration, fn func()) interface{ Stop() bool } {
			t := &fakeTimer{f: fn}
			f.timers = append(f.timers, t)
			return t
		},
	}
	return f
}

// fireAll runs every linger armed so far, stopped ones included (a timer
// that fired while enter stopped it).
func (f *fakeProcs) fireAll() {
	for _, t := range f.timers {
		t.f()
	}
}

func (f *fakeProcs) procs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func TestSyscallProcsRaiseWhileAnyWorkRunsAndLinger(t *testing.T) {
	p := newFakeProcs(2, 4)
	leave1 := p.enter()
	if p.n != 6 {
		t.Fatalf("GOMAXPROCS %d during the first work, want 2+4", p.n)
	}
	leave2 := p.enter()
	leave1()
	leave1() // leave is idempotent: the second one must not count
	if p.n != 6 || len(p.timers) != 0 {
		t.Fatalf("GOMAXPROCS %d, %d lingers after one of two left; want 6 and none", p.n, len(p.timers))
	}
	leave2()
	if p.n != 6 || len(p.timers) != 1 {
		t.Fatalf("GOMAXPROCS %d, %d lingers after the last left; want 6 for one linger", p.n, len(p.timers))
	}
	p.fireAll()
	if p.n != 2 || p.resets != 1 {
		t.Fatalf("GOMAXPROCS %d after the linger (%d resets), want the default 2, reset once", p.n, p.resets)
	}
}

func TestSyscallProcsWorkDuringLingerKeepsThem(t *testing.T) {
	p := newFakeProcs(2, 4)
	p.enter()()
	leave := p.enter() // within the linger: no second raise, the linger is off
	if p.n != 6 || !p.timers[0].stopped {
		t.Fatalf("GOMAXPROCS %d, linger stopped %v; want 6 and stopped", p.n, p.timers[0].stopped)
	}
	p.fireAll() // the first linger fired anyway (it raced the enter): nothing happens
	if p.n != 6 || p.resets != 0 {
		t.Fatalf("GOMAXPROCS %d (%d resets) after a stale linger fired during work, want 6, none", p.n, p.resets)
	}
	leave()
	p.timers[0].f() // stale again: a newer linger is armed
	if p.n != 6 {
		t.Fatalf("GOMAXPROCS %d after a stale linger, want 6 until the newest one", p.n)
	}
	p.timers[len(p.timers)-1].f()
	if p.n != 2 || p.resets != 1 {
		t.Fatalf("GOMAXPROCS %d (%d resets) after the newest linger, want 2, one", p.n, p.resets)
	}
}

func TestSyscallProcsConcurrentWork(t *testing.T) {
	p := newFakeProcs(2, 4)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				leave := p.enter()
				if got := p.procs(); got != 6 {
					t.Errorf("GOMAXPROCS %d inside work, want 6", got)
				}
				leave()
			}
		}()
	}
	wg.Wait()
	if p.active != 0 || p.n != 6 {
		t.Fatalf("after all work: %d active, GOMAXPROCS %d; want 0 and 6 (lingering)", p.active, p.n)
	}
	p.fireAll()
	if p.n != 2 {
		t.Fatalf("GOMAXPROCS %d after the lingers, want 2", p.n)
	}
}

func TestSyscallProcsOperatorSettingStands(t *testing.T) {
	t.Setenv("GOMAXPROCS", "3")
	if p := newSyscallProcs(4); p != nil {
		t.Fatal("GOMAXPROCS is set in the environment: want no extra Ps (nil)")
	}
	var p *syscallProcs
	before := runtime.GOMAXPROCS(0)
	p.enter()()
	if runtime.GOMAXPROCS(0) != before {
		t.Fatal("a nil syscallProcs changed GOMAXPROCS")
	}
	t.Setenv("GOMAXPROCS", "")
	if p := newSyscallProcs(0); p != nil {
		t.Fatal("no extra Ps asked for: want nil")
	}
}

// The real runtime: raised inside, the default again after.
func TestSyscallProcsRealRuntime(t *testing.T) {
	if v := os.Getenv("GOMAXPROCS"); v != "" {
		t.Skipf("GOMAXPROCS=%s is set for this test run: the daemon would leave it alone", v)
	}
	// The process's own extra Ps (an earlier boot's) must not be in place.
	for deadline := time.Now().Add(10 * time.Second); ProcsRaised() && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	p := newSyscallProcs(4)
	p.linger = time.Millisecond
	def := runtime.GOMAXPROCS(0)
	leave := p.enter()
	if got := runtime.GOMAXPROCS(0); got != def+4 {
		leave()
		t.Fatalf("GOMAXPROCS %d inside, want %d", got, def+4)
	}
	leave()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.GOMAXPROCS(0) != def && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Fatalf("GOMAXPROCS %d after the linger, want the default %d back", got, def)
	}
}
