package sandbox_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox"
)

// TestKilledWhileFrozenRetries: kill -9 of a frozen sandbox's runtime is
// delivered only at the thaw, after the call's liveness checks; the call
// never reached user code and answers from a fresh sandbox.
func TestKilledWhileFrozenRetries(t *testing.T) {
	env := newEnv(t)
	m := newManager(t, env, func(c *sandbox.Config) {
		c.FreezeAfter = time.Hour
		c.IdleTimeout = 2 * time.Hour
	})
	for _, target := range []string{"node", "init"} {
		t.Run(target, func(t *testing.T) {
			container := "frozen-" + target
			mustRun(t, m, container, helloCode, nil)
			old := m.SandboxOf(container).Info()
			m.ReapAt(time.Now().Add(time.Hour + time.Minute))
			if st := m.SandboxOf(container).Info().State; st != types.SandboxPaused {
				t.Fatalf("state %s after FreezeAfter, want paused", st)
			}
			pid := old.Pid // tini, the sandbox's init
			if target == "node" {
				pid = sandbox.FirstChild(old.Pid)
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if !pidAlive(pid) {
				t.Fatalf("frozen %s (pid %d) died before the thaw: the scenario needs the kill pending", target, pid)
			}
			var got string
			mustRun(t, m, container, helloCode, &got)
			if got != "hello" {
				t.Fatalf("answer %q", got)
			}
			now := m.SandboxOf(container).Info()
			if now.ID == old.ID || now.Pid == old.Pid {
				t.Fatalf("answered by sandbox %s (pid %d), want a fresh one (old %s)", now.ID, now.Pid, old.ID)
			}
			eventually(t, 10*time.Second, "the killed runtime gone", func() bool { return !pidAlive(pid) && !pidAlive(old.Pid) })
		})
	}
}

// TestExternalFreezeThawed: a sandbox frozen from outside (FROZEN written
// to its cgroup) does not hold its callers until the exec timeout.
func TestExternalFreezeThawed(t *testing.T) {
	env := newEnv(t)
	m := newManager(t, env, func(c *sandbox.Config) { c.ExecTimeout = 20 * time.Second })
	mustRun(t, m, "ext", helloCode, nil)
	sb := m.SandboxOf("ext")
	freezeFromOutside(t, filepath.Join(env.CgroupParent, sb.ID()))
	// The reaper thaws it; a wait for the exec timeout would fail the
	// call with ErrTimeout.
	mustRun(t, m, "ext", helloCode, nil)
	if now := m.SandboxOf("ext"); now == nil || now.ID() != sb.ID() {
		t.Fatalf("the thawed sandbox was replaced")
	}
}

// freezeFromOutside freezes the cgroup at path as an operator would: v1
// freezer.state, else v2 cgroup.freeze.
func freezeFromOutside(t *testing.T, path string) {
	t.Helper()
	v1 := filepath.Join("/sys/fs/cgroup/freezer", path, "freezer.state")
	if err := os.WriteFile(v1, []byte("FROZEN"), 0); err == nil {
		return
	}
	v2 := filepath.Join("/sys/fs/cgroup", path, "cgroup.freeze")
	if err := os.WriteFile(v2, []byte("1"), 0); err != nil {
		t.Fatalf("freezing %s: %v", path, err)
	}
}
