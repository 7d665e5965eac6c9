package agent_test

import (
	"encoding/json"
	"github.com/webtaskd/webtaskd/sandbox/agent"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeStoreModule lays out one name@version tree of the module store:
// <store>/<key>/node_modules/<name>/index.js, with a dependency of its own.
func writeStoreModule(t *testing.T, store, key, name, body, depBody string) {
	t.Helper()
	for rel, content := range map[string]string{
		filepath.Join(key, "node_modules", name, "index.js"):    body,
		filepath.Join(key, "node_modules", "inner", "index.js"): depBody,
	} {
		p := filepath.Join(store, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRequireResolvesPerWebtask: two webtasks in one agent declare two
// versions of one package; each require gives its own version (and that
// version's own dependency tree), at the same time; an undeclared package
// falls back to the global directory; a declared package that is not
// available is a 400 naming it and why.
func TestRequireResolvesPerWebtask(t *testing.T) {
	h := startAgent(t)
	writeStoreModule(t, h.storeDir, "k1", "@s/lib", `module.exports = "v1+" + require("inner");`, `module.exports = "inner1";`)
	writeStoreModule(t, h.storeDir, "k2", "@s/lib", `module.exports = "v2+" + require("inner");`, `module.exports = "inner2";`)
	code := `const lib = require('@s/lib'); module.exports = (cb) => cb(null, lib);`
	a := newReq(code)
	a.Modules, a.CodeHash = map[string]string{"@s/lib": "k1"}, hashOf(code+"k1")
	b := newReq(code)
	b.Modules, b.CodeHash = map[string]string{"@s/lib": "k2"}, hashOf(code+"k2")
	for i := 0; i < 2; i++ { // cold, then warm (cached per code hash)
		for req, want := range map[*agent.Request]string{a: `"v1+inner1"`, b: `"v2+inner2"`} {
			if resp := h.do(t, req); resp.Status != 200 || string(resp.Body) != want {
				t.Fatalf("round %d: got %d %s, want %s", i, resp.Status, resp.Body, want)
			}
		}
	}

	// Undeclared: the global directory (here empty), then Node's own error.
	undeclared := newReq(`require('other'); module.exports = (cb) => cb();`)
	undeclared.Modules = map[string]string{"@s/lib": "k1"}
	resp := h.do(t, undeclared)
	if resp.Status != 400 || !strings.Contains(string(resp.Body), `Cannot find module \"other\"`) {
		t.Fatalf("undeclared: %d %s", resp.Status, resp.Body)
	}

	queued := newReq(`require('@s/lib/sub'); module.exports = (cb) => cb();`)
	queued.Modules = map[string]string{"@s/lib": "!@s/lib@3.0.0 is queued on this host"}
	resp = h.do(t, queued)
	var body struct {
		Code           int
		Error, Details string
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		t.Fatal(err)
	}
	if resp.Status != 400 || !strings.Contains(body.Error, `Cannot find module "@s/lib/sub"`) || !strings.Contains(body.Details, "@s/lib@3.0.0 is queued on this host") {
		t.Fatalf("not available: %d %s", resp.Status, resp.Body)
	}
}

// TestRequireIsNamedRequire: the require webtask code gets has node's name,
// with declared modules too, whose require is the agent's own function,
// which the bundler renames (rootfs/agent.go).
func TestRequireIsNamedRequire(t *testing.T) {
	h := startAgent(t)
	code := `module.exports = (cb) => cb(null, require.name);`
	plain, declared := newReq(code), newReq(code)
	declared.Modules, declared.CodeHash = map[string]string{"@s/lib": "k1"}, hashOf(code+"k1")
	for name, r := range map[string]*agent.Request{"no modules": plain, "declared modules": declared} {
		if resp := h.do(t, r); resp.Status != 200 || string(resp.Body) != `"require"` {
			t.Errorf("%s: require.name: %d %s", name, resp.Status, resp.Body)
		}
	}
}
