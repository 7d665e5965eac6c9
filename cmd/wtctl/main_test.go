package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

func TestMain(m *testing.M) { RunTests(m, "wtctl") }

// wtctl runs one command line against env and returns its output.
func wtctl(t *testing.T, env *Env, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := NewMain(&out, &errOut)
	full := append([]string{"--url", env.Base, "--data-dir", env.Cfg.DataDir}, args...)
	err := m.Run(context.Background(), full)
	if errOut.Len() > 0 {
		t.Logf("wtctl stderr: %s", errOut.String())
	}
	return out.String(), err
}

func TestTwoContainersListedThenReapedWhenIdle(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.IdleTimeout = 2 * time.Second
	cfg.Sandbox.PoolSize = 0 // no pooled sandboxes: nothing may be left once both are reaped
	env := Start(t, cfg)
	code := `module.exports = cb => setTimeout(() => cb(null, { pid: process.pid }), 200);`
	env.PutWebtask("red", "t", code, nil)
	env.PutWebtask("blue", "t", code, nil)

	var wg sync.WaitGroup
	for _, c := range []string{"red", "blue"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := env.Call("GET", "/api/run/"+c+"/t", "", nil)
			if r.Status != 200 {
				t.Errorf("run %s: %d %s", c, r.Status, r.Body)
			}
		}()
	}
	wg.Wait()

	out, err := wtctl(t, env, "sandboxes")
	if err != nil {
		t.Fatalf("wtctl sandboxes: %v", err)
	}
	t.Logf("wtctl sandboxes:\n%s", out)
	for _, c := range []string{"red", "blue"} {
		if !strings.Contains(out, " "+c+" ") {
			t.Errorf("wtctl sandboxes does not list container %s", c)
		}
	}
	out, err = wtctl(t, env, "sandboxes", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var list []types.SandboxInfo
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("--json output: %v", err)
	}
	if len(list) != 2 || list[0].Pid == 0 || list[1].Pid == 0 || list[0].Pid == list[1].Pid {
		t.Fatalf("want two sandboxes with distinct runtime pids, got %+v", list)
	}

	WaitFor(t, "idle sandboxes to be destroyed", 30*time.Second, func() bool { return len(env.Sandboxes()) == 0 })
	for _, s := range list {
		if ProcAlive(s.Pid) {
			t.Errorf("runtime pid %d of idle sandbox %s still alive", s.Pid, s.ID)
		}
	}
	if left := CgroupLeftovers(t, cfg.Sandbox.CgroupParent); len(left) != 0 {
		t.Errorf("cgroups left behind: %v", left)
	}
	if left := StateLeftovers(cfg.Sandbox.StateDir); len(left) != 0 {
		t.Errorf("state dirs left behind: %v", left)
	}
	out, err = wtctl(t, env, "sandboxes")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "red") || strings.Contains(out, "blue") {
		t.Errorf("wtctl still lists reaped sandboxes:\n%s", out)
	}
}

func TestWebtasksLs(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	env.PutWebtask("red", "one", `module.exports = cb => cb(null, 1);`, nil)
	env.PutWebtask("blue", "two", `module.exports = cb => cb(null, 2);`, nil)
	out, err := wtctl(t, env, "webtasks", "ls")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "red") || !strings.Contains(out, "blue") {
		t.Errorf("webtasks ls (all):\n%s", out)
	}
	out, err = wtctl(t, env, "webtasks", "ls", "red")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "one") || strings.Contains(out, "two") {
		t.Errorf("webtasks ls red:\n%s", out)
	}
	if _, err := wtctl(t, env, "--token", "garbage", "webtasks", "ls"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("bad token: err = %v, want a 403 error", err)
	}
}
