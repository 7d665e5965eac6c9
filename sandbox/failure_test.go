package sandbox_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox"
	"github.com/webtaskd/webtaskd/sandbox/sandboxtest"
)

func TestTimeoutRecycles(t *testing.T) {
	env := newEnv(t)
	m := newManager(t, env, func(c *sandbox.Config) { c.ExecTimeout = time.Second })
	mustRun(t, m, "loop", helloCode, nil)
	before := m.List()[0]

	err := run(t, m, "loop", `module.exports = function (cb) { for (;;) {} };`, nil)
	if !errors.Is(err, sandbox.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if pidAlive(before.Pid) {
		t.Errorf("timed-out runtime %d still alive", before.Pid)
	}
	mustRun(t, m, "loop", helloCode, nil)
	after := m.List()
	if len(after) != 1 || after[0].Pid == before.Pid || after[0].ID == before.ID {
		t.Fatalf("after timeout: %+v, want a fresh sandbox (old pid %d)", after, before.Pid)
	}
	if got := stateDirs(t, env); len(got) != 1 || got[0] != after[0].ID {
		t.Errorf("state dirs %v, want only %s", got, after[0].ID)
	}
}

func TestCrashRecycles(t *testing.T) {
	env := newEnv(t)
	m := newManager(t, env, nil)
	mustRun(t, m, "crash", helloCode, nil)
	before := m.List()[0]

	err := run(t, m, "crash", `module.exports = function (cb) { process.exit(1); };`, nil)
	if !errors.Is(err, sandbox.ErrCrashed) {
		t.Fatalf("err = %v, want ErrCrashed", err)
	}
	mustRun(t, m, "crash", helloCode, nil)
	after := m.List()
	if len(after) != 1 || after[0].Pid == before.Pid {
		t.Fatalf("after crash: %+v, want a fresh sandbox (old pid %d)", after, before.Pid)
	}
	eventually(t, 10*time.Second, "crashed sandbox's state and cgroups removed", func() bool {
		if _, err := os.Stat(filepath.Join(env.StateDir, "containers", before.ID)); !os.IsNotExist(err) {
			return false
		}
		for _, p := range cgroupChildren(t, env.CgroupParent) {
			if filepath.Base(p) == before.ID {
				return false
			}
		}
		return true
	})
}

func TestMemoryBombOOM(t *testing.T) {
	env := newEnv(t)
	m := newManager(t, env, func(c *sandbox.Config) { c.Limits.MemoryMB = 64 })
	mustRun(t, m, "bomb", helloCode, nil)
	err := run(t, m, "bomb", `module.exports = function (cb) {
  const keep = [];
  for (;;) keep.push(Buffer.alloc(1 << 20, 1));
};`, nil)
	if !errors.Is(err, sandbox.ErrOOM) {
		t.Fatalf("err = %v, want ErrOOM", err)
	}
	mustRun(t, m, "bomb", helloCode, nil)
}

func TestForkBombHitsPidsLimit(t *testing.T) {
	env := newEnv(t)
	const pidsMax = 40
	m := newManager(t, env, func(c *sandbox.Config) {
		c.Limits.Pids = pidsMax
		c.Limits.MemoryMB = 1024
		c.ExecTimeout = 20 * time.Second
	})
	mustRun(t, m, "neighbour", helloCode, nil)
	var res struct {
		Spawned int            `json:"spawned"`
		Errors  map[string]int `json:"errors"`
	}
	mustRun(t, m, "bomb", sandboxtest.ForkBombCode, &res)
	t.Logf("fork bomb: %+v", res)
	if res.Errors["EAGAIN"] == 0 {
		t.Errorf("no EAGAIN from spawn; the pids limit did not bite: %+v", res)
	}
	bomb := m.SandboxOf("bomb").Info()
	procs := cgroupProcs(t, env, bomb.ID)
	b := readCgroupFile(t, "pids", filepath.Join(env.CgroupParent, bomb.ID), "pids.current")
	if cur, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || cur > pidsMax {
		t.Errorf("pids.current %q (%v), want at most the limit %d", b, err, pidsMax)
	}
	t.Logf("bomb sandbox holds %d processes", len(procs))
	// The neighbour keeps answering, and so does the bombed runtime.
	mustRun(t, m, "neighbour", helloCode, nil)
	mustRun(t, m, "bomb", helloCode, nil)
}

func TestDestroyAndPause(t *testing.T) {
	env := newEnv(t)
	m := newManager(t, env, nil)
	const counter = `module.exports = function (cb) { global.n = (global.n || 0) + 1; cb(null, global.n); };`
	var n int
	mustRun(t, m, "p", counter, &n)
	sb := m.SandboxOf("p")
	if err := sb.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := sb.Pause(); err != nil {
		t.Fatalf("second Pause: %v", err)
	}
	if st := sb.Info().State; st != types.SandboxPaused {
		t.Errorf("state %s, want paused", st)
	}
	if err := sb.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := sb.Resume(); err != nil {
		t.Fatalf("second Resume: %v", err)
	}
	mustRun(t, m, "p", counter, &n)
	if n != 2 {
		t.Fatalf("global counter %d after pause/resume, want 2", n)
	}

	// Destroy while paused: the freezer must not keep it alive.
	if err := sb.Pause(); err != nil {
		t.Fatal(err)
	}
	pid := sb.Info().Pid
	id := sb.ID()
	if err := sb.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if err := sb.Destroy(); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
	select {
	case <-sb.Done():
	default:
		t.Fatal("Done not closed after Destroy")
	}
	if pidAlive(pid) {
		t.Errorf("runtime %d alive after Destroy", pid)
	}
	_, err := sb.Invoke(context.Background(), req(helloCode), 0)
	if !errors.Is(err, sandbox.ErrDestroyed) {
		t.Fatalf("Invoke after Destroy: %v, want ErrDestroyed", err)
	}
	for _, p := range cgroupChildren(t, env.CgroupParent) {
		if filepath.Base(p) == id {
			t.Errorf("cgroup left after Destroy: %s", p)
		}
	}
	if _, err := os.Stat(filepath.Join(env.StateDir, "containers", id)); !os.IsNotExist(err) {
		t.Errorf("state dir left after Destroy: %v", err)
	}
	// The manager notices and starts a fresh one.
	mustRun(t, m, "p", counter, &n)
	if n != 1 {
		t.Errorf("fresh sandbox counter %d, want 1", n)
	}
}

func TestKillAndClose(t *testing.T) {
	env := newEnv(t)
	cfg := sandbox.Config{StateDir: env.StateDir, CgroupParent: env.CgroupParent}
	scaleTimeouts(&cfg)
	m, err := sandbox.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, m, "k", helloCode, nil)
	mustRun(t, m, "other", helloCode, nil)
	if err := m.Kill("nope"); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("Kill(unknown) = %v, want ErrNotFound", err)
	}
	id := m.SandboxOf("k").ID()
	if err := m.Kill(id); err != nil {
		t.Fatal(err)
	}
	if l := m.List(); len(l) != 1 || l[0].Container != "other" {
		t.Errorf("List after Kill: %+v", l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sandboxtest.Scale(30*time.Second))
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := run(t, m, "k", helloCode, nil); !errors.Is(err, sandbox.ErrClosed) {
		t.Errorf("Invoke after Close = %v, want ErrClosed", err)
	}
	for _, mp := range cgroupMountpoints(t) {
		if _, err := os.Stat(filepath.Join(mp, env.CgroupParent)); !os.IsNotExist(err) {
			t.Errorf("cgroup parent left in %s", mp)
		}
	}
	if got := stateDirs(t, env); len(got) != 0 {
		t.Errorf("state left after Close: %v", got)
	}
}

func TestKillFailsCallInFlight(t *testing.T) {
	env := newEnv(t)
	m := newManager(t, env, nil)
	mustRun(t, m, "slow", helloCode, nil)
	sb := m.SandboxOf("slow")
	errc := make(chan error, 1)
	go func() {
		errc <- run(t, m, "slow", `module.exports = function (cb) { setTimeout(() => cb(null, 1), 600000); };`, nil)
	}()
	eventually(t, 10*time.Second, "call in flight", func() bool { return sb.Info().InFlight == 1 })
	if err := m.Kill(sb.ID()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, sandbox.ErrDestroyed) {
			t.Fatalf("call in flight got %v, want ErrDestroyed", err)
		}
	case <-time.After(sandboxtest.Scale(20 * time.Second)):
		t.Fatal("call in flight did not return after Kill")
	}
}
