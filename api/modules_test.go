package api

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/modules"
)

// fakeModules records what the API asks of the module manager.
type fakeModules struct {
	mu       sync.Mutex
	requests [][]types.ModuleSpec
	resets   []bool
	names    []string
	removed  []types.ModuleSpec
	states   map[types.ModuleSpec]string
	gen      uint64
}

func (f *fakeModules) Request(_ context.Context, specs []types.ModuleSpec, reset bool) ([]types.Module, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, specs)
	f.resets = append(f.resets, reset)
	out := []types.Module{}
	for _, s := range specs {
		out = append(out, types.Module{Name: s.Name, Version: s.Version, State: types.ModuleQueued})
	}
	return out, nil
}

func (f *fakeModules) Versions(_ context.Context, name string) ([]types.Module, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.names = append(f.names, name)
	return []types.Module{{Name: name, Version: "1.0.0", State: types.ModuleFailed, Error: "npm: 404"}}, nil
}

func (f *fakeModules) State(s types.ModuleSpec) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.states[s]
}

func (f *fakeModules) Generation() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen
}

// set changes a module's state (and the generation).
func (f *fakeModules) set(s types.ModuleSpec, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.states == nil {
		f.states = map[types.ModuleSpec]string{}
	}
	f.states[s] = state
	f.gen++
}

func (f *fakeModules) List(context.Context) ([]types.Module, error) {
	return []types.Module{{Name: "a", Version: "1.0.0", State: types.ModuleAvailable}}, nil
}

func (f *fakeModules) Remove(_ context.Context, s types.ModuleSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.Name == "absent" {
		return errdefs.Errorf(errdefs.ErrNotFound, "module not found")
	}
	f.removed = append(f.removed, s)
	return nil
}

func TestRequestModules(t *testing.T) {
	e := newEnv(t, Config{})
	body := `{"modules":[{"name":"lodash","version":"4.17.21"},{"name":"@webtask/cron-auth-middleware","version":"1.2.0"}]}`
	if w := e.do("POST", "/api/env/node/modules", "", body); w.Code != 403 {
		t.Fatalf("no credential: %d %s, want 403", w.Code, w.Body)
	}
	w := e.do("POST", "/api/env/node/modules", e.tenant, body)
	if w.Code != 200 {
		t.Fatalf("tenant token: %d %s", w.Code, w.Body)
	}
	var got []types.Module
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || len(got) != 2 || got[1].Name != "@webtask/cron-auth-middleware" || got[0].State != "queued" {
		t.Fatalf("answer %s (%v)", w.Body, err)
	}
	// The runtime's built-in middleware needs no install.
	if got[1].State != "available" || len(e.mods.requests[0]) != 1 || e.mods.requests[0][0].Name != "lodash" {
		t.Fatalf("built-in module: answer %s, manager asked for %v", w.Body, e.mods.requests)
	}
	if w := e.do("POST", "/api/env/node/modules", e.tenant, `{"modules":[{"name":"@webtask/middleware-compiler","version":"latest"}]}`); w.Code != 400 {
		t.Fatalf("a built-in with an inexact version: %d, want 400", w.Code)
	}
	if w := e.do("POST", "/api/env/node/modules?reset=1", e.tenant, body); w.Code != 403 {
		t.Fatalf("reset with a tenant token: %d, want 403", w.Code)
	}
	if w := e.do("POST", "/api/env/node/modules?reset=1", e.master, body); w.Code != 200 {
		t.Fatalf("reset with the master token: %d %s", w.Code, w.Body)
	}
	for _, bad := range []string{``, `[]`, `{"modules":[{"name":"x","version":"1.0.0","extra":1}]}`, `{"mods":[]}`} {
		if w := e.do("POST", "/api/env/node/modules", e.tenant, bad); w.Code != 400 || !strings.Contains(w.Body.String(), `"req_id"`) {
			t.Errorf("body %q: %d %s, want a 400 JSON error", bad, w.Code, w.Body)
		}
	}
	if len(e.mods.requests) != 2 || e.mods.resets[0] || !e.mods.resets[1] {
		t.Fatalf("manager saw %v resets %v, want 2 requests, the second a reset", e.mods.requests, e.mods.resets)
	}
}

func TestModuleVersionsNeedsNoCredential(t *testing.T) {
	e := newEnv(t, Config{})
	for path, want := range map[string]string{
		"/api/env/node/modules/lodash":             "lodash",
		"/api/env/node/modules/%40wtd%2Fscoped":    "@wtd/scoped",
		"/api/env/node/modules/@wtd/scoped":        "@wtd/scoped",
		"/api/env/node/modules/%40wtd%2fscoped%2e": "@wtd/scoped.",
	} {
		w := e.do("GET", path, "", "")
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"error":"npm: 404"`) {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
		}
		if got := e.mods.names[len(e.mods.names)-1]; got != want {
			t.Errorf("GET %s asked for %q, want %q", path, got, want)
		}
	}
}

func TestListAndRemoveModulesAreAdmin(t *testing.T) {
	e := newEnv(t, Config{})
	if w := e.do("GET", "/api/env/node/modules", e.tenant, ""); w.Code != 403 {
		t.Fatalf("list with a tenant token: %d", w.Code)
	}
	if w := e.do("GET", "/api/env/node/modules", e.master, ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"available"`) {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
	if w := e.do("DELETE", "/api/env/node/modules/%40a%2Fb?version=1.0.0", e.tenant, ""); w.Code != 403 {
		t.Fatalf("remove with a tenant token: %d", w.Code)
	}
	if w := e.do("DELETE", "/api/env/node/modules/%40a%2Fb?version=1.0.0", e.master, ""); w.Code != 204 {
		t.Fatalf("remove: %d %s", w.Code, w.Body)
	}
	if w := e.do("DELETE", "/api/env/node/modules/absent?version=1.0.0", e.master, ""); w.Code != 404 {
		t.Fatalf("remove absent: %d %s", w.Code, w.Body)
	}
	if w := e.do("DELETE", "/api/env/node/modules/x", e.master, ""); w.Code != 400 {
		t.Fatalf("remove without version: %d %s", w.Code, w.Body)
	}
	if len(e.mods.removed) != 1 || e.mods.removed[0] != (types.ModuleSpec{Name: "@a/b", Version: "1.0.0"}) {
		t.Fatalf("removed %v", e.mods.removed)
	}
}

// TestTranspileAtCreate: ES module and TypeScript code are transpiled once
// at create time and the run gets the CommonJS; plain CommonJS passes
// through untouched; a syntax error is a 400 naming line and column and
// stores nothing; fetch_code returns the source as written.
func TestTranspileAtCreate(t *testing.T) {
	e := buildEnv(t, envOptions{realStore: true})
	put := func(name, code string, meta map[string]string) (int, string) {
		b, _ := json.Marshal(map[string]any{"code": code, "meta": meta})
		w := e.do("PUT", "/api/webtask/test/"+name, e.tenant, string(b))
		return w.Code, w.Body.String()
	}
	esm := "export default function (ctx, cb) { cb(null, 1) }"
	if code, body := put("esm", esm, nil); code != 200 {
		t.Fatalf("PUT esm: %d %s", code, body)
	}
	if w := e.do("POST", "/api/run/test/esm", "", ""); w.Code != 200 {
		t.Fatalf("run esm: %d %s", w.Code, w.Body)
	}
	req := e.runner.last(t)
	if strings.Contains(req.Code, "export default") || !strings.Contains(req.Code, "module.exports") || req.CodeHash != store.CodeHash(req.Code) {
		t.Fatalf("the run got untranspiled or mis-hashed code: hash %s\n%s", req.CodeHash, req.Code)
	}
	w := e.do("GET", "/api/webtask/test/esm?fetch_code=true", e.tenant, "")
	if !strings.Contains(w.Body.String(), "export default function") {
		t.Fatalf("fetch_code did not return the source: %s", w.Body)
	}

	cjs := "module.exports = (ctx, cb) => cb(null, 1)"
	put("cjs", cjs, nil)
	e.do("POST", "/api/run/test/cjs", "", "")
	if req := e.runner.last(t); req.Code != cjs || req.CodeHash != store.CodeHash(cjs) {
		t.Fatalf("plain CommonJS was changed:\n%s", req.Code)
	}

	ts := "module.exports = (ctx: any, cb: (e: null, v: number) => void) => cb(null, 1)"
	if code, body := put("ts", ts, nil); code != 200 {
		t.Fatalf("PUT TypeScript as javascript: %d %s", code, body) // not parsed: CommonJS passes through
	}
	if code, body := put("ts", ts, map[string]string{"wt-language": "typescript"}); code != 200 {
		t.Fatalf("PUT typescript: %d %s", code, body)
	}
	e.do("POST", "/api/run/test/ts", "", "")
	if req := e.runner.last(t); strings.Contains(req.Code, ": any") {
		t.Fatalf("TypeScript reached the sandbox:\n%s", req.Code)
	}

	code, body := put("bad", "export default function (ctx, cb) {\n  cb(null, 1\n}", nil)
	if code != 400 || !strings.Contains(body, "line 3, column 1") {
		t.Fatalf("syntax error: %d %s, want 400 with line and column", code, body)
	}
	if w := e.do("GET", "/api/webtask/test/bad", e.tenant, ""); w.Code != 404 {
		t.Fatalf("a webtask with a syntax error was stored: %d", w.Code)
	}
	if code, body := put("lang", cjs, map[string]string{"wt-language": "cobol"}); code != 400 {
		t.Fatalf("unknown language: %d %s", code, body)
	}
	// A custom compiler's input is not JavaScript: never transpiled.
	tpl := "import {{query.what}}\nexport {{query.where}}"
	if code, body := put("tpl", tpl, map[string]string{"wt-compiler": "https://compilers.example/tpl.js"}); code != 200 {
		t.Fatalf("template with a custom compiler: %d %s", code, body)
	}
	// The middleware compiler compiles JavaScript: transpiled.
	if code, _ := put("mw", esm, map[string]string{"wt-compiler": "@webtask/middleware-compiler"}); code != 200 {
		t.Fatalf("esm behind the middleware compiler: %d", code)
	}
	e.do("POST", "/api/run/test/mw", "", "")
	if req := e.runner.last(t); strings.Contains(req.Code, "export default") {
		t.Fatalf("esm behind the middleware compiler was not transpiled:\n%s", req.Code)
	}
}

// TestDependenciesResolvePerWebtask: meta wt-node-dependencies is validated
// at create time (unknown modules are requested), and each run carries the
// webtask's own resolution, with a code hash standing for code and
// resolution, cached until a module's state changes.
func TestDependenciesResolvePerWebtask(t *testing.T) {
	e := buildEnv(t, envOptions{realStore: true})
	code := "module.exports = (ctx, cb) => cb(null, require('lodash').VERSION)"
	put := func(name, deps string) int {
		b, _ := json.Marshal(map[string]any{"code": code, "meta": map[string]string{"wt-node-dependencies": deps}})
		w := e.do("PUT", "/api/webtask/test/"+name, e.tenant, string(b))
		return w.Code
	}
	for _, bad := range []string{`lodash`, `{"lodash":"^4.0.0"}`, `{"Lodash":"4.17.21"}`, `{"lodash":4}`} {
		if code := put("bad", bad); code != 400 {
			t.Errorf("deps %s: %d, want 400", bad, code)
		}
	}
	if code := put("a", `{"lodash":"4.17.21"}`); code != 200 {
		t.Fatalf("PUT a: %d", code)
	}
	if code := put("b", `{"lodash":"4.17.20"}`); code != 200 {
		t.Fatalf("PUT b: %d", code)
	}
	if n := len(e.mods.requests); n != 2 || e.mods.requests[0][0].Version != "4.17.21" {
		t.Fatalf("unknown declared modules were not requested: %v", e.mods.requests)
	}
	v21 := types.ModuleSpec{Name: "lodash", Version: "4.17.21"}
	e.mods.set(v21, types.ModuleAvailable)
	e.mods.set(types.ModuleSpec{Name: "lodash", Version: "4.17.20"}, types.ModuleQueued)
	e.do("GET", "/api/run/test/a", "", "")
	ra := e.runner.last(t)
	e.do("GET", "/api/run/test/b", "", "")
	rb := e.runner.last(t)
	if ra.Modules["lodash"] != modules.Key(v21) {
		t.Errorf("a resolves lodash to %q, want the key of 4.17.21", ra.Modules["lodash"])
	}
	if got := rb.Modules["lodash"]; !strings.HasPrefix(got, "!lodash@4.17.20 is queued") {
		t.Errorf("b resolves lodash to %q, want a not-available reason", got)
	}
	if ra.CodeHash == rb.CodeHash || ra.CodeHash == store.CodeHash(code) {
		t.Errorf("one code with two resolutions must have two code hashes (a %s, b %s)", ra.CodeHash, rb.CodeHash)
	}
	// Once b's version is available its code hash changes (recompiled).
	e.mods.set(types.ModuleSpec{Name: "lodash", Version: "4.17.20"}, types.ModuleAvailable)
	e.do("GET", "/api/run/test/b", "", "")
	if rb2 := e.runner.last(t); rb2.CodeHash == rb.CodeHash || strings.HasPrefix(rb2.Modules["lodash"], "!") {
		t.Errorf("b after install: %v %s", rb2.Modules, rb2.CodeHash)
	}
	// Webtasks without dependencies are untouched.
	e.do("PUT", "/api/webtask/test/plain", e.tenant, `{"code":`+jsonString(code)+`}`)
	e.do("GET", "/api/run/test/plain", "", "")
	if r := e.runner.last(t); r.Modules != nil || r.CodeHash != store.CodeHash(code) {
		t.Errorf("plain webtask: modules %v hash %s", r.Modules, r.CodeHash)
	}
}
