// Package daemontest starts real webtaskd daemons for end-to-end tests:
// each with its own data dir, state dir and cgroup parent, closed when the
// test ends.
package daemontest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/daemon"
	"github.com/webtaskd/webtaskd/sandbox"
	"github.com/webtaskd/webtaskd/sandbox/sandboxtest"
)

// Env is one daemon started for a test, with its directories.
type Env struct {
	t testing.TB
	// Cfg is the daemon's configuration; D the daemon (nil after Stop).
	Cfg daemon.Config
	D   *daemon.Daemon
	// Base is the API's base URL; Master the master token.
	Base   string
	Master string
}

// RequireRoot skips, loudly, when not root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: this end-to-end test starts real libcontainer sandboxes and needs root")
	}
}

// RandHex returns n random bytes in hex.
func RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Config returns a configuration isolated from any other daemon on the
// host: its own data dir, state dir and cgroup parent (below the delegated
// cgroup of WEBTASKD_TEST_CGROUP_ROOT), its timeouts stretched by the test
// time scale (sandboxtest.Scale).
func Config(t testing.TB) daemon.Config {
	id := RandHex(4)
	cfg := daemon.DefaultConfig()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Sandbox.StateDir = "/run/webtaskd-test-" + id
	cfg.Sandbox.CgroupParent = sandboxtest.CgroupParent("webtaskd-test-" + id)
	cfg.ShutdownGrace = sandboxtest.Scale(5 * time.Second)
	cfg.ShutdownTimeout = sandboxtest.Scale(20 * time.Second)
	cfg.Sandbox.ExecTimeout = sandboxtest.Scale(10 * time.Second)
	cfg.Sandbox.StartTimeout = sandboxtest.Scale(cfg.Sandbox.StartTimeout)
	// A test's steps between two calls take longer when scaled: an idle
	// sandbox must not freeze sooner than they assume.
	cfg.Sandbox.FreezeAfter = sandboxtest.Scale(cfg.Sandbox.FreezeAfter)
	// After the daemon's own Close (cleanups run last first): what a
	// daemon killed by the test left, down to its parent cgroup.
	t.Cleanup(func() {
		if err := sandbox.Purge(cfg.Sandbox.StateDir, cfg.Sandbox.CgroupParent, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			t.Errorf("purging the daemon's sandboxes: %v", err)
		}
	})
	return cfg
}

// Logger logs through t.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(Writer{T: t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// Writer sends what is written to it to a test log.
type Writer struct{ T testing.TB }

// Write logs p through the test.
func (w Writer) Write(p []byte) (int, error) {
	w.T.Helper()
	w.T.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Start opens a daemon for cfg and closes it when the test ends.
func Start(t testing.TB, cfg daemon.Config) *Env {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	return open(t, cfg, Logger(t))
}

// open opens a daemon for cfg logging to log (bounded
// to 30s) and closes it when the test ends.
func open(t testing.TB, cfg daemon.Config, log *slog.Logger) *Env {
	t.Helper()
	d := daemon.New(cfg, log)
	ctx, cancel := context.WithTimeout(context.Background(), sandboxtest.Scale(30*time.Second))
	defer cancel()
	if err := d.Open(ctx); err != nil {
		t.Fatalf("open daemon: %v", err)
	}
	env := &Env{t: t, Cfg: cfg, D: d, Base: "http://" + d.Addr(), Master: d.MasterToken()}
	t.Cleanup(func() { env.Stop() })
	return env
}

// Attach returns an Env for a daemon running in another process.
func Attach(t testing.TB, cfg daemon.Config, base, master string) *Env {
	return &Env{t: t, Cfg: cfg, Base: base, Master: master}
}

// Stop closes the daemon (idempotent).
func (e *Env) Stop() {
	if e.D == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sandboxtest.Scale(30*time.Second))
	defer cancel()
	if err := e.D.Close(ctx); err != nil {
		e.t.Errorf("close daemon: %v", err)
	}
	e.D = nil
}

// Response is a finished HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("Response %d is not JSON: %v: %s", r.Status, err, r.Body)
	}
}

// Call sends one request. tok "" sends no credentials.
func (e *Env) Call(method, path, tok string, body any, header ...string) Response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.Base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	// Redirects are answers too: tests see them as they are.
	client := &http.Client{Timeout: sandboxtest.Scale(60 * time.Second), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// MustStatus fails the test unless r has the wanted status.
func MustStatus(t testing.TB, r Response, want int, what string) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("%s: status %d, want %d; body: %s", what, r.Status, want, r.Body)
	}
}

// PutWebtask creates or replaces a webtask with the master token.
func (e *Env) PutWebtask(container, name, code string, secrets map[string]string) {
	e.t.Helper()
	body := map[string]any{"code": code}
	if secrets != nil {
		body["secrets"] = secrets
	}
	r := e.Call("PUT", "/api/webtask/"+container+"/"+name, e.Master, body)
	MustStatus(e.t, r, 200, "PUT webtask")
}

// Sandboxes lists live Sandboxes through the admin API.
func (e *Env) Sandboxes() []types.SandboxInfo {
	e.t.Helper()
	r := e.Call("GET", "/api/admin/sandboxes", e.Master, nil)
	MustStatus(e.t, r, 200, "list sandboxes")
	var list []types.SandboxInfo
	r.JSON(e.t, &list)
	return list
}

// Receive returns the next value from ch, or fails the test with "timed
// out after <timeout> waiting for <what>" (timeout scaled by the test time
// scale).
func Receive[T any](t testing.TB, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	timeout = sandboxtest.Scale(timeout)
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
		var zero T
		return zero
	}
}

// WaitFor polls cond until it holds or the deadline (timeout, scaled by the
// test time scale) passes.
func WaitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	timeout = sandboxtest.Scale(timeout)
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

// CgroupLeftovers lists the child cgroups below the config's cgroup
// parent in every mounted hierarchy (sandbox.CgroupChildren).
func CgroupLeftovers(t testing.TB, parent string) []string {
	t.Helper()
	found, err := sandbox.CgroupChildren(parent)
	if err != nil {
		t.Fatalf("listing cgroups: %v", err)
	}
	return found
}

// StateLeftovers lists libcontainer state directories.
func StateLeftovers(stateDir string) []string {
	entries, _ := os.ReadDir(filepath.Join(stateDir, "containers"))
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// ProcAlive reports whether pid is a live (non-zombie) process.
func ProcAlive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}
