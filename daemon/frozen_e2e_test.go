package daemon_test

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// TestFleetKilledWhileFrozen: kill -9 of a frozen sandbox's runtime (node)
// lands at the thaw; the next calls answer 200 from a fresh sandbox.
func TestFleetKilledWhileFrozen(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.PoolSize = 0
	cfg.FreezeAfter = 200 * time.Millisecond
	env := Start(t, cfg)
	env.PutWebtask("ice", "hello", helloCode, nil)
	MustStatus(t, env.Call("GET", "/api/run/ice/hello", "", nil), 200, "first call")
	WaitFor(t, "sandbox frozen", 10*time.Second, func() bool { return sandboxOf(t, env, "ice").State == types.SandboxPaused })
	old := sandboxOf(t, env, "ice")
	node := firstChild(t, old.Pid) // tini's child
	if err := syscall.Kill(node, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r := env.Call("GET", "/api/run/ice/hello", "", nil)
		MustStatus(t, r, 200, "call "+strconv.Itoa(i+1)+" after kill -9 while frozen")
	}
	if now := sandboxOf(t, env, "ice"); now.ID == old.ID {
		t.Fatalf("still served by the killed sandbox %s", old.ID)
	}
	if v := sumMetric(scrape(t, env), "webtaskd_invocation_retries_total", nil); v != 1 {
		t.Errorf("webtaskd_invocation_retries_total = %v, want 1", v)
	}
}

// firstChild returns the oldest child of pid.
func firstChild(t *testing.T, pid int) int {
	t.Helper()
	p := strconv.Itoa(pid)
	b, err := os.ReadFile("/proc/" + p + "/task/" + p + "/children")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		t.Fatalf("pid %d has no child", pid)
	}
	c, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}
