package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/daemon/cron"
	"github.com/webtaskd/webtaskd/sandbox"
	"github.com/webtaskd/webtaskd/sandbox/agent"
	"github.com/webtaskd/webtaskd/sandbox/logstream"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/keyring"
	"github.com/webtaskd/webtaskd/store/token"
)

// fakeStore is an in-memory Store that counts writes.
type fakeStore struct {
	mu     sync.Mutex
	m      map[string]*store.Webtask
	writes int
	gets   int
}

func newFakeStore() *fakeStore { return &fakeStore{m: map[string]*store.Webtask{}} }

func (f *fakeStore) PutWebtask(_ context.Context, w *store.Webtask) (*store.Webtask, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	c := w.Clone()
	c.CodeHash = hashCode([]byte(w.Code))
	f.m[w.Container+"/"+w.Name] = c
	return c, nil
}

func (f *fakeStore) GetWebtask(_ context.Context, container, name string) (*store.Webtask, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	w, ok := f.m[container+"/"+name]
	if !ok {
		return nil, fmt.Errorf("webtask %s/%s: %w", container, name, store.ErrWebtaskNotFound)
	}
	return w, nil
}

func (f *fakeStore) DeleteWebtask(_ context.Context, container, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if _, ok := f.m[container+"/"+name]; !ok {
		return store.ErrWebtaskNotFound
	}
	delete(f.m, container+"/"+name)
	return nil
}

func (f *fakeStore) ListWebtasks(_ context.Context, o store.ListOptions) ([]*store.Webtask, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*store.Webtask
	for _, w := range f.m {
		if o.Container != "" && w.Container != o.Container {
			continue
		}
		ok := true
		for k, v := range o.Meta {
			if got, has := w.Meta[k]; !has || got != v {
				ok = false
			}
		}
		if ok {
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Container+"/"+out[i].Name < out[j].Container+"/"+out[j].Name })
	if o.Offset >= len(out) {
		return nil, nil
	}
	out = out[o.Offset:]
	if o.Limit > 0 && len(out) > o.Limit {
		out = out[:o.Limit]
	}
	return out, nil
}

func (f *fakeStore) writeCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

// fakeRunner records requests and answers with resp or err.
type fakeRunner struct {
	mu   sync.Mutex
	reqs []*agent.Request
	resp *agent.Response
	err  error
	// call, when set, is returned as it is (a streamed response).
	call *sandbox.Call
}

func (f *fakeRunner) Invoke(_ context.Context, container string, req *agent.Request) (*sandbox.Call, error) {
	resp, err := f.invoke(container, req)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	call := f.call
	f.mu.Unlock()
	if call != nil {
		return call, nil
	}
	return sandbox.BufferedCall(resp.Status, resp.Headers, resp.Body), nil
}

func (f *fakeRunner) invoke(container string, req *agent.Request) (*agent.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.Container != container {
		return nil, fmt.Errorf("container mismatch %q vs %q", req.Container, container)
	}
	f.reqs = append(f.reqs, req)
	if f.err != nil {
		return nil, f.err
	}
	if f.resp != nil {
		return f.resp, nil
	}
	return &agent.Response{Status: 200, Headers: map[string][]string{"content-type": {"application/json"}}, Body: []byte(`{"ok":true}`)}, nil
}

func (f *fakeRunner) last(t testing.TB) *agent.Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("runner was not invoked")
	}
	return f.reqs[len(f.reqs)-1]
}

func (f *fakeRunner) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

type fakeSandboxes struct {
	mu     sync.Mutex
	infos  []types.SandboxInfo
	killed []string
}

func (f *fakeSandboxes) List() []types.SandboxInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]types.SandboxInfo(nil), f.infos...)
}

func (f *fakeSandboxes) Kill(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, in := range f.infos {
		if in.ID == id {
			f.infos = append(f.infos[:i], f.infos[i+1:]...)
			f.killed = append(f.killed, id)
			return nil
		}
	}
	return fmt.Errorf("kill %s: %w", id, sandbox.ErrNotFound)
}

// Fleet view of the fake sandboxes (Inspect, Status, Recycle).
func (f *fakeSandboxes) Inspect(id string) (types.SandboxInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, in := range f.infos {
		if in.ID == id {
			return in, nil
		}
	}
	return types.SandboxInfo{}, fmt.Errorf("inspect %s: %w", id, sandbox.ErrNotFound)
}

func (f *fakeSandboxes) Status() types.FleetStatus { return types.FleetStatus{} }

func (f *fakeSandboxes) Recycle(string) {}

// env is a server over a real key ring, a real SQLite store for the
// store-backed dependencies, and fakes for the runner and the sandboxes.
type env struct {
	t      testing.TB
	srv    *Server
	h      http.Handler
	store  Store        // the webtask store: fstore or st
	fstore *fakeStore   // nil with envOptions.realStore
	st     *store.Store // every other store-backed dependency
	runner *fakeRunner
	sbx    *fakeSandboxes
	codes  *fakeCodes
	mods   *fakeModules
	cron   *cron.Scheduler // not started
	ring   *keyring.Ring
	now    time.Time
	master string
	tenant string // ten "test", dd 1
}

// envOptions shape buildEnv's server.
type envOptions struct {
	cfg Config
	// realStore makes the SQLite store the webtask Store too (else a
	// fakeStore that counts writes).
	realStore bool
	// deps, when set, changes the dependencies last.
	deps func(e *env, d *Deps)
}

func newEnv(t testing.TB, cfg Config) *env { return buildEnv(t, envOptions{cfg: cfg}) }

// buildEnv is the one builder of api test servers: every dependency of
// New is set.
func buildEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	ring, err := keyring.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), store.Options{Path: t.TempDir() + "/wt.db", Ring: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sch, err := cron.New(cron.Config{Store: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	hub := logstream.New(logstream.Config{})
	t.Cleanup(hub.Close)
	e := &env{t: t, runner: &fakeRunner{}, sbx: &fakeSandboxes{}, ring: ring, now: time.Now(),
		st: st, codes: newFakeCodes(), cron: sch, store: st, mods: &fakeModules{}}
	if !o.realStore {
		e.fstore = newFakeStore()
		e.store = e.fstore
	}
	d := Deps{
		Store: e.store, Keys: ring, Runner: e.runner, Sandboxes: e.sbx,
		Security: st, KeyAdmin: ring, Fleet: e.sbx, ContainerLimits: st,
		Metrics: prometheus.NewRegistry(), Data: st, Logs: hub,
		CronStore: st, Cron: sch, Codes: e.codes, Transpiled: st, Modules: e.mods,
		Logger: quiet,
		Now:    func() time.Time { return e.now },
	}
	if o.deps != nil {
		o.deps(e, &d)
	}
	srv, err := New(o.cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	e.srv, e.h = srv, srv.Handler()
	e.master = e.sign(&token.Claims{})
	e.tenant = e.sign(&token.Claims{Ten: "test", Dd: intp(1)})
	return e
}

func intp(n int) *int { return &n }

func (e *env) sign(c *token.Claims) string {
	e.t.Helper()
	raw, err := token.Sign(e.ring.Current(), c)
	if err != nil {
		e.t.Fatal(err)
	}
	return raw
}

// issueUnnamed POSTs body (the claims of an unnamed token of container
// "test") to /api/tokens/issue with the tenant token and checks the answer:
// 200, the raw token as the body, the run URL with ?key= as Location, and
// a token that verifies. It returns the raw token and its claims.
func (e *env) issueUnnamed(body string) (string, *token.Claims) {
	e.t.Helper()
	w := e.do("POST", "/api/tokens/issue", e.tenant, body)
	if w.Code != 200 {
		e.t.Fatalf("%d %s", w.Code, w.Body)
	}
	raw := w.Body.String()
	if loc := w.Header().Get("Location"); loc != "http://example.com/api/run/test?key="+url.QueryEscape(raw) {
		e.t.Fatalf("Location = %q", loc)
	}
	c, err := token.Verify(e.ring, raw, e.now)
	if err != nil {
		e.t.Fatal(err)
	}
	return raw, c
}

// do sends a request; tok "" sends no credential.
func (e *env) do(method, target, tok string, body string, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// wantError asserts a JSON error response of status with msg ("" = any).
func wantError(t testing.TB, w *httptest.ResponseRecorder, status int, msg string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("content-type = %q; body %s", ct, w.Body)
	}
	var b struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		ReqID   string `json:"req_id"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatalf("error body %q: %v", w.Body, err)
	}
	if b.Code != status || b.ReqID == "" || b.ReqID != w.Header().Get(HeaderRequestID) {
		t.Fatalf("error body = %+v, header id %q", b, w.Header().Get(HeaderRequestID))
	}
	if msg != "" && b.Message != msg {
		t.Fatalf("message = %q, want %q", b.Message, msg)
	}
}

func decode[T any](t testing.TB, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decoding %s: %v", w.Body, err)
	}
	return v
}
