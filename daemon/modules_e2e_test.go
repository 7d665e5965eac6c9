package daemon_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
	"github.com/webtaskd/webtaskd/store/modules"
	"github.com/webtaskd/webtaskd/store/modules/modulestest"
)

// moduleStates is GET /api/env/node/modules/{name} (no credential, the name
// URL-encoded as wt-cli sends it), by version.
func moduleStates(t *testing.T, e *Env, name string) map[string]types.Module {
	t.Helper()
	r := e.Call("GET", "/api/env/node/modules/"+strings.ReplaceAll(strings.ReplaceAll(name, "@", "%40"), "/", "%2F"), "", nil)
	MustStatus(t, r, 200, "GET module versions")
	var list []types.Module
	r.JSON(t, &list)
	out := map[string]types.Module{}
	for _, m := range list {
		out[m.Version] = m
	}
	return out
}

// TestModulesProvisioningE2E provisions modules through the HTTP API from
// a registry mirror on loopback with the real npm: queued, then available
// (or failed with npm's message), on disk under <data-dir>/modules, and
// still available after a restart without another install.
func TestModulesProvisioningE2E(t *testing.T) {
	RequireRoot(t)
	if _, err := os.Stat("/usr/bin/npm"); err != nil {
		t.Skip("SKIPPED LOUDLY: no npm (make deps installs it)")
	}
	dep := modulestest.Package{Name: "wtd-dep", Version: "1.0.0", Files: map[string]string{"index.js": `module.exports = "dep";`}}
	one := modulestest.Package{Name: "@wtd/tiny", Version: "1.0.0", Deps: map[string]string{"wtd-dep": "1.0.0"}, Files: map[string]string{"index.js": `module.exports = "one";`}}
	two := modulestest.Package{Name: "@wtd/tiny", Version: "2.0.0", Files: map[string]string{"index.js": `module.exports = "two";`}}
	reg := modulestest.NewRegistry(t, dep, one, two)
	t.Setenv("npm_config_registry", reg.URL()) // the host's npm configuration
	cfg := Config(t)
	e := Start(t, cfg)
	tenant := e.Call("POST", "/api/tokens/issue", e.Master, map[string]any{"ten": "demo"})
	MustStatus(t, tenant, 200, "issue a tenant token")

	req := map[string]any{"modules": []map[string]string{
		{"name": "@wtd/tiny", "version": "1.0.0"}, {"name": "@wtd/tiny", "version": "2.0.0"}, {"name": "wtd-absent", "version": "1.0.0"},
	}}
	if r := e.Call("POST", "/api/env/node/modules", "", req); r.Status != 403 {
		t.Fatalf("POST without a token: %d, want 403", r.Status)
	}
	r := e.Call("POST", "/api/env/node/modules", string(tenant.Body), req)
	MustStatus(t, r, 200, "POST modules with a tenant token")
	var got []types.Module
	r.JSON(t, &got)
	if len(got) != 3 || got[0].State != types.ModuleQueued {
		t.Fatalf("POST answered %s", r.Body)
	}
	WaitFor(t, "both versions available", 3*time.Minute, func() bool {
		s := moduleStates(t, e, "@wtd/tiny")
		return s["1.0.0"].State == types.ModuleAvailable && s["2.0.0"].State == types.ModuleAvailable
	})
	WaitFor(t, "the absent module failed", time.Minute, func() bool {
		return moduleStates(t, e, "wtd-absent")["1.0.0"].State == types.ModuleFailed
	})
	if msg := moduleStates(t, e, "wtd-absent")["1.0.0"].Error; !strings.Contains(msg, "404") {
		t.Errorf("failed module's error = %q, want npm's 404 message", msg)
	}
	for _, p := range []modulestest.Package{one, two} {
		key := modules.Key(types.ModuleSpec{Name: p.Name, Version: p.Version})
		b, err := os.ReadFile(filepath.Join(cfg.DataDir, "modules", key, "node_modules", "@wtd", "tiny", "index.js"))
		if err != nil || !strings.Contains(string(b), p.Files["index.js"]) {
			t.Errorf("%s@%s on disk: %q, %v", p.Name, p.Version, b, err)
		}
	}
	fetched := reg.Count("/-/" + one.TarballName())

	e.Stop()
	e2 := Start(t, cfg)
	if s := moduleStates(t, e2, "@wtd/tiny"); s["1.0.0"].State != types.ModuleAvailable || s["2.0.0"].State != types.ModuleAvailable {
		t.Fatalf("after restart: %+v", s)
	}
	r = e2.Call("POST", "/api/env/node/modules", e2.Master, map[string]any{"modules": []map[string]string{{"name": "@wtd/tiny", "version": "1.0.0"}}})
	MustStatus(t, r, 200, "POST an available module")
	if !strings.Contains(string(r.Body), `"available"`) || reg.Count("/-/"+one.TarballName()) != fetched {
		t.Fatalf("an available module was installed again after restart: %s", r.Body)
	}
	// The admin view and removal.
	r = e2.Call("GET", "/api/env/node/modules", e2.Master, nil)
	MustStatus(t, r, 200, "list modules")
	r = e2.Call("DELETE", "/api/env/node/modules/%40wtd%2Ftiny?version=2.0.0", e2.Master, nil)
	MustStatus(t, r, 204, "remove a module")
	if s := moduleStates(t, e2, "@wtd/tiny"); len(s) != 1 {
		t.Fatalf("after removal: %+v", s)
	}
}

// TestModernJavaScriptE2E runs an ES module webtask, a "use latest" one and
// a TypeScript one in real sandboxes; a syntax error is a 400 with line and
// column at create time.
func TestModernJavaScriptE2E(t *testing.T) {
	RequireRoot(t)
	e := Start(t, Config(t))
	put := func(name, code string, meta map[string]string) Response {
		return e.Call("PUT", "/api/webtask/demo/"+name, e.Master, map[string]any{"code": code, "meta": meta})
	}
	MustStatus(t, put("esm", "const greet = (who) => `hello ${who}`;\nexport default function (ctx, cb) { cb(null, greet(ctx.query.who)) }", nil), 200, "PUT esm")
	MustStatus(t, put("latest", "\"use latest\";\nmodule.exports = async (ctx, cb) => cb(null, { who: ctx.query.who ?? 'nobody' });", nil), 200, "PUT use latest")
	MustStatus(t, put("ts", "interface Q { who?: string }\nexport default (ctx: { query: Q }, cb: (e: Error | null, v?: unknown) => void): void => cb(null, { ts: ctx.query.who });",
		map[string]string{"wt-language": "typescript"}), 200, "PUT typescript")
	for name, want := range map[string]string{"esm": `"hello you"`, "latest": `{"who":"you"}`, "ts": `{"ts":"you"}`} {
		r := e.Call("GET", "/api/run/demo/"+name+"?who=you", "", nil)
		if r.Status != 200 || string(r.Body) != want {
			t.Errorf("run %s: %d %s, want %s", name, r.Status, r.Body, want)
		}
	}
	r := put("broken", "export default function (ctx, cb) {\n  cb(null, 1\n}", nil)
	if r.Status != 400 || !strings.Contains(string(r.Body), "line 3, column 1") {
		t.Fatalf("syntax error: %d %s, want 400 with line and column", r.Status, r.Body)
	}
}

// TestDependenciesPerWebtaskE2E: two webtasks in one container declare two
// versions of one package and each gets its own, in the same warm sandbox;
// module files are read-only inside the sandbox; a declared module that is
// not yet available and an undeclared one are 400s naming them; a
// declared module this host never saw is installed on demand.
func TestDependenciesPerWebtaskE2E(t *testing.T) {
	RequireRoot(t)
	if _, err := os.Stat("/usr/bin/npm"); err != nil {
		t.Skip("SKIPPED LOUDLY: no npm (make deps installs it)")
	}
	v1 := modulestest.Package{Name: "wtd-lib", Version: "1.0.0", Deps: map[string]string{"wtd-inner": "1.0.0"},
		Files: map[string]string{"index.js": `module.exports = "lib1+" + require("wtd-inner");`}}
	v2 := modulestest.Package{Name: "wtd-lib", Version: "2.0.0", Files: map[string]string{"index.js": `module.exports = "lib2";`}}
	inner := modulestest.Package{Name: "wtd-inner", Version: "1.0.0", Files: map[string]string{"index.js": `module.exports = "inner1";`}}
	late := modulestest.Package{Name: "wtd-late", Version: "1.0.0", Files: map[string]string{"index.js": `module.exports = "late";`}}
	reg := modulestest.NewRegistry(t, v1, v2, inner)
	t.Setenv("npm_config_registry", reg.URL())
	e := Start(t, Config(t))
	r := e.Call("POST", "/api/env/node/modules", e.Master, map[string]any{"modules": []map[string]string{
		{"name": "wtd-lib", "version": "1.0.0"}, {"name": "wtd-lib", "version": "2.0.0"}}})
	MustStatus(t, r, 200, "POST modules")
	WaitFor(t, "both versions available", 3*time.Minute, func() bool {
		s := moduleStates(t, e, "wtd-lib")
		return s["1.0.0"].State == types.ModuleAvailable && s["2.0.0"].State == types.ModuleAvailable
	})
	code := `const lib = require("wtd-lib");
module.exports = (ctx, cb) => {
  let write = "no error";
  try { require("fs").writeFileSync(require.resolve("wtd-lib"), "x"); write = "written"; } catch (e) { write = e.code; }
  cb(null, { lib, write });
};`
	put := func(name, deps string) {
		t.Helper()
		MustStatus(t, e.Call("PUT", "/api/webtask/demo/"+name, e.Master, map[string]any{
			"code": code, "meta": map[string]string{"wt-node-dependencies": deps}}), 200, "PUT "+name)
	}
	put("one", `{"wtd-lib":"1.0.0"}`)
	put("two", `{"wtd-lib":"2.0.0"}`)
	for i := 0; i < 2; i++ {
		for name, want := range map[string]string{"one": "lib1+inner1", "two": "lib2"} {
			r := e.Call("GET", "/api/run/demo/"+name, "", nil)
			var got struct{ Lib, Write string }
			r.JSON(t, &got)
			if r.Status != 200 || got.Lib != want {
				t.Fatalf("run %s: %d %s, want lib %q", name, r.Status, r.Body, want)
			}
			if got.Write != "EROFS" && got.Write != "EACCES" {
				t.Fatalf("run %s: writing a module file gave %q, want EROFS or EACCES", name, got.Write)
			}
			if served := r.Header.Get("x-wt-sandbox"); i == 1 && served != "warm" {
				t.Errorf("second round, %s: served %q, want warm", name, served)
			}
		}
	}
	n := 0
	for _, sb := range e.Sandboxes() {
		if sb.Container == "demo" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("container demo has %d sandboxes, want one running both versions", n)
	}

	// Undeclared.
	MustStatus(t, e.Call("PUT", "/api/webtask/demo/undeclared", e.Master, map[string]any{
		"code": `require("wtd-lib"); module.exports = cb => cb();`}), 200, "PUT undeclared")
	r = e.Call("GET", "/api/run/demo/undeclared", "", nil)
	if r.Status != 400 || !strings.Contains(string(r.Body), `Cannot find module \"wtd-lib\"`) {
		t.Fatalf("undeclared: %d %s", r.Status, r.Body)
	}

	// Declared but unknown to this host: requested on create, failed
	// (not published yet), then published and requested again.
	MustStatus(t, e.Call("PUT", "/api/webtask/demo/late", e.Master, map[string]any{
		"code": `const l = require("wtd-late"); module.exports = cb => cb(null, l);`,
		"meta": map[string]string{"wt-node-dependencies": `{"wtd-late":"1.0.0"}`}}), 200, "PUT late")
	WaitFor(t, "the undeclared-on-host module to be tried", time.Minute, func() bool {
		return moduleStates(t, e, "wtd-late")["1.0.0"].State == types.ModuleFailed
	})
	r = e.Call("GET", "/api/run/demo/late", "", nil)
	if r.Status != 400 || !strings.Contains(string(r.Body), `Cannot find module \"wtd-late\"`) || !strings.Contains(string(r.Body), "wtd-late@1.0.0 is failed on this host") {
		t.Fatalf("not available: %d %s", r.Status, r.Body)
	}
	reg.Add(late)
	MustStatus(t, e.Call("POST", "/api/env/node/modules", e.Master, map[string]any{"modules": []map[string]string{{"name": "wtd-late", "version": "1.0.0"}}}), 200, "retry")
	WaitFor(t, "wtd-late available", time.Minute, func() bool {
		return moduleStates(t, e, "wtd-late")["1.0.0"].State == types.ModuleAvailable
	})
	r = e.Call("GET", "/api/run/demo/late", "", nil)
	if r.Status != 200 || string(r.Body) != `"late"` {
		t.Fatalf("after install: %d %s", r.Status, r.Body)
	}
}
