package sandbox_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/sandbox"
	"github.com/webtaskd/webtaskd/sandbox/agent"
	"github.com/webtaskd/webtaskd/sandbox/sandboxtest"
)

// crashChildEnv makes the re-executed test binary act as a daemon that
// starts one sandbox, prints its pid and waits to be SIGKILLed.
const crashChildEnv = "WEBTASKD_SANDBOX_TEST_CRASH_CHILD"

func TestMain(m *testing.M) {
	sandbox.ReexecInit()
	if os.Getenv(crashChildEnv) != "" {
		crashChild()
		return
	}
	os.Exit(m.Run())
}

// crashChild starts a Manager + one sandbox from env settings, prints
// "PID <pid>" and blocks until killed.
func crashChild() {
	cfg := sandbox.Config{
		StateDir:     os.Getenv("WT_STATE_DIR"),
		CgroupParent: os.Getenv("WT_CGROUP_PARENT"),
		StartTimeout: sandboxtest.Scale(sandbox.DefaultStartTimeout),
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	m, err := sandbox.NewManager(cfg)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	if _, err := m.Invoke(context.Background(), "crash", req(helloCode)); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Printf("PID %d\n", m.List()[0].Pid)
	select {}
}

const helloCode = `module.exports = function (cb) { cb(null, 'hello'); };`

func req(code string) *agent.Request {
	sum := sha256.Sum256([]byte(code))
	return &agent.Request{
		ReqID:    "req-" + rand.Text()[:8],
		CodeHash: hex.EncodeToString(sum[:]),
		Code:     code,
		Method:   "GET",
		URL:      "/api/run/c",
		Headers:  map[string][]string{},
		PB:       2,
	}
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPING: sandbox tests need root (libcontainer namespaces and cgroups)")
	}
}

// testEnv is a unique state dir and cgroup parent.
type testEnv struct {
	StateDir, CgroupParent string
}

func newEnv(t testing.TB) testEnv {
	t.Helper()
	requireRoot(t)
	dir, err := os.MkdirTemp("/run", "webtaskd-test-")
	if err != nil {
		t.Fatal(err)
	}
	env := testEnv{StateDir: dir, CgroupParent: sandboxtest.CgroupParent("webtaskd-test-" + strings.ToLower(rand.Text()[:10]))}
	t.Cleanup(func() {
		_ = sandbox.Sweep(dir, env.CgroupParent, nil)
		for _, mp := range cgroupMountpoints(t) {
			_ = os.Remove(filepath.Join(mp, env.CgroupParent))
		}
		_ = os.RemoveAll(dir)
	})
	return env
}

func newManager(t testing.TB, env testEnv, mutate func(*sandbox.Config)) *sandbox.Manager {
	t.Helper()
	return openManager(t, sandbox.Config{StateDir: env.StateDir, CgroupParent: env.CgroupParent}, mutate)
}

// openManager opens a Manager on cfg changed by mutate, logging only with
// -v, and closes it (bounded) when the test ends.
func openManager(t testing.TB, cfg sandbox.Config, mutate func(*sandbox.Config)) *sandbox.Manager {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mutate != nil {
		mutate(&cfg)
	}
	scaleTimeouts(&cfg)
	m, err := sandbox.NewManager(cfg)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), sandboxtest.Scale(30*time.Second))
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

// scaleTimeouts stretches the manager's start and exec timeouts (defaults
// included) by the test time scale.
func scaleTimeouts(cfg *sandbox.Config) {
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = sandbox.DefaultStartTimeout
	}
	if cfg.ExecTimeout == 0 {
		cfg.ExecTimeout = sandbox.DefaultExecTimeout
	}
	cfg.StartTimeout = sandboxtest.Scale(cfg.StartTimeout)
	cfg.ExecTimeout = sandboxtest.Scale(cfg.ExecTimeout)
}

// run invokes code in container and decodes the JSON body into out.
func run(t testing.TB, m *sandbox.Manager, container, code string, out any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sandboxtest.Scale(60*time.Second))
	defer cancel()
	r := req(code)
	r.Container = container
	call, err := m.Invoke(ctx, container, r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(call.Body)
	_ = call.Body.Close()
	if err != nil {
		return err
	}
	if call.Status != 200 {
		return fmt.Errorf("status %d: %s", call.Status, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("decoding %q: %w", body, err)
		}
	}
	return nil
}

func mustRun(t testing.TB, m *sandbox.Manager, container, code string, out any) {
	t.Helper()
	if err := run(t, m, container, code, out); err != nil {
		t.Fatalf("invoke %s: %v", container, err)
	}
}

func cgroupMountpoints(t testing.TB) []string {
	t.Helper()
	out, err := sandbox.CgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// cgroupChildren lists the child cgroups under parent in every hierarchy.
func cgroupChildren(t testing.TB, parent string) []string {
	t.Helper()
	out, err := sandbox.CgroupChildren(parent)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stateDirs lists libcontainer state dirs.
func stateDirs(t testing.TB, env testEnv) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(env.StateDir, "containers"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// cgroupProcs lists the processes of a sandbox's cgroup.
func cgroupProcs(t testing.TB, env testEnv, id string) []string {
	t.Helper()
	return strings.Fields(string(readCgroupFile(t, "pids", filepath.Join(env.CgroupParent, id), "cgroup.procs")))
}

// readCgroupFile reads file of the cgroup at path: in controller's v1
// hierarchy, else in the unified (v2) hierarchy. Neither is a failure.
func readCgroupFile(t testing.TB, controller, path, file string) []byte {
	t.Helper()
	v1 := filepath.Join("/sys/fs/cgroup", controller, path, file)
	b, err := os.ReadFile(v1)
	if err == nil {
		return b
	}
	b, err2 := os.ReadFile(filepath.Join("/sys/fs/cgroup", path, file))
	if err2 != nil {
		t.Fatalf("reading %s of cgroup %s: v1: %v; v2: %v", file, path, err, err2)
	}
	return b
}

// eventually polls cond until it holds or the deadline (within, scaled by
// the test time scale) passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	within = sandboxtest.Scale(within)
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pidAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// A zombie is dead for our purposes.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
