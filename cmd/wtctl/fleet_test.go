package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

func TestSandboxesInspectStatusLimitsKillTop(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 1
	env := Start(t, cfg)
	env.PutWebtask("insp", "t", `module.exports = cb => { global.keep = Buffer.alloc(8 << 20, 1); cb(null, 'ok'); };`, nil)
	MustStatus(t, env.Call("GET", "/api/run/insp/t", "", nil), 200, "run")
	id := env.Sandboxes()[0].ID

	out, err := wtctl(t, env, "sandboxes", "inspect", id)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Container    insp", "Cgroup", cfg.Sandbox.CgroupParent + "/" + id, "Memory", "CPU time", "Pids", "OOM kills    0", "Invocations  1"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	out, err = wtctl(t, env, "sandboxes", "inspect", "--json", id)
	if err != nil {
		t.Fatal(err)
	}
	var info types.SandboxInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("inspect --json: %v: %s", err, out)
	}
	// The webtask holds 8 MiB: the cgroup's figure must show it.
	if c := info.Cgroup; c == nil || c.MemoryBytes < 8<<20 || c.MemoryLimitBytes != uint64(cfg.Sandbox.Limits.MemoryMB)<<20 || c.Pids == 0 || c.CPUNanos == 0 {
		t.Fatalf("cgroup figures %+v", info.Cgroup)
	}

	WaitFor(t, "pool refilled", 30*time.Second, func() bool {
		out, _ := wtctl(t, env, "status")
		return strings.Contains(out, "pool: 1/1 ready")
	})
	out, _ = wtctl(t, env, "status")
	if !strings.Contains(out, "daemon: ok") || !strings.Contains(out, "1 running") {
		t.Errorf("status:\n%s", out)
	}

	if out, err = wtctl(t, env, "limits", "set", "insp", "--pids", "64", "--exec-timeout", "2s", "--max-response-bytes", "1048576"); err != nil {
		t.Fatal(err)
	}
	out, err = wtctl(t, env, "limits", "get", "--json", "insp")
	if err != nil || !strings.Contains(out, `"pids": 64`) || !strings.Contains(out, `"exec_timeout_ms": 2000`) || !strings.Contains(out, `"max_response_bytes": 1048576`) {
		t.Fatalf("limits get: %v\n%s", err, out)
	}
	if _, err := wtctl(t, env, "limits", "set", "insp", "--pids", "3"); err == nil || !strings.Contains(err.Error(), "pids") {
		t.Fatalf("limits set --pids 3: %v, want a 400 naming pids", err)
	}
	// New limits: the next call gets a fresh sandbox with them.
	MustStatus(t, env.Call("GET", "/api/run/insp/t", "", nil), 200, "run with new limits")
	s := env.Sandboxes()[0]
	if s.ID == id || s.Limits.Pids != 64 || s.Limits.ExecTimeoutMS != 2000 || s.Limits.MaxResponseBytes != 1<<20 {
		t.Fatalf("after limits set: %+v", s)
	}
	if _, err := wtctl(t, env, "limits", "rm", "insp"); err != nil {
		t.Fatal(err)
	}
	MustStatus(t, env.Call("GET", "/api/run/insp/t", "", nil), 200, "run with default limits")
	s = env.Sandboxes()[0]
	if s.Limits.Pids != cfg.Sandbox.Limits.Pids {
		t.Fatalf("after limits rm: %+v", s)
	}

	out, err = wtctl(t, env, "sandboxes", "top", "--iterations", "1", "--interval", "100ms")
	if err != nil || !strings.Contains(out, s.ID) || !strings.Contains(out, "pool:") {
		t.Fatalf("top: %v\n%s", err, out)
	}
	if _, err := wtctl(t, env, "sandboxes", "kill", s.ID); err != nil {
		t.Fatal(err)
	}
	if len(env.Sandboxes()) != 0 {
		t.Fatal("killed sandbox still listed")
	}
	if _, err := wtctl(t, env, "sandboxes", "inspect", s.ID); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("inspect of a killed sandbox: %v, want 404", err)
	}
}
