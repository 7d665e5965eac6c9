package sandbox_test

import (
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/sandbox"
)

// A real boot raises GOMAXPROCS while libcontainer works, and the
// runtime's default is back a linger (1 s) after the boot and after the
// teardown.
func TestBootRaisesProcsAndGivesThemBack(t *testing.T) {
	if v := os.Getenv("GOMAXPROCS"); v != "" {
		t.Skipf("GOMAXPROCS=%s is set for this test run: the daemon leaves it alone then", v)
	}
	env := newEnv(t)
	// An earlier test's boots or teardowns may still linger.
	eventually(t, 10*time.Second, "no earlier extra Ps", func() bool { return !sandbox.ProcsRaised() })
	def := runtime.GOMAXPROCS(0)
	m := newManager(t, env, nil) // no pool: nothing boots but the call's sandbox

	var most atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if n := int64(runtime.GOMAXPROCS(0)); n > most.Load() {
				most.Store(n)
			}
			runtime.Gosched()
		}
	}()
	mustRun(t, m, "procs", helloCode, nil)
	close(stop)
	<-watched
	if most.Load() <= int64(def) {
		t.Errorf("GOMAXPROCS stayed at most %d during a boot, want more than the default %d", most.Load(), def)
	}
	backToDefault := func() bool { return !sandbox.ProcsRaised() && runtime.GOMAXPROCS(0) == def }
	eventually(t, 10*time.Second, "GOMAXPROCS back to the default after the boot", backToDefault)
	list := m.List()
	if len(list) != 1 {
		t.Fatalf("List() = %+v, want the call's sandbox", list)
	}
	if err := m.Kill(list[0].ID); err != nil { // returns once it is torn down
		t.Fatalf("Kill: %v", err)
	}
	if got := runtime.GOMAXPROCS(0); got <= def {
		t.Errorf("GOMAXPROCS %d right after a teardown, want it raised for the linger", got)
	}
	eventually(t, 10*time.Second, "GOMAXPROCS back to the default after the teardown", backToDefault)
}
