package daemon_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
	"github.com/webtaskd/webtaskd/store/modules/modulestest"
)

// mustacheCompiler is docs/EXTENDING.md's example 1: the real Mustache
// renders the webtask's code with the request's query and its secrets.
const mustacheCompiler = `const Mustache = require('mustache');
module.exports = function (options, cb) {
  const template = options.script;
  Mustache.parse(template); // syntax errors surface at compile time
  cb(null, function (ctx, cb) {
    cb(null, { html: Mustache.render(template, { query: ctx.query, secrets: ctx.secrets, body: ctx.body }) });
  });
};`

// TestMustacheCompilerE2E: the real mustache@4.2.0, provisioned through
// the modules API from npm's configured registry, renders a template
// webtask with ctx.query and ctx.secrets, with the compiler both as a
// provisioned module (an npm pack tarball of the host's tarball
// directory, its mustache dependency from the registry) and at a URL
// (its require('mustache') resolved through the webtask's
// wt-node-dependencies).
func TestMustacheCompilerE2E(t *testing.T) {
	RequireRoot(t)
	if _, err := os.Stat("/usr/bin/npm"); err != nil {
		t.Skip("SKIPPED LOUDLY: no npm (make deps installs it)")
	}
	modulestest.RequireNpmRegistry(t, "mustache")
	comp := modulestest.Package{Name: "mustache-email-compiler", Version: "1.0.0",
		Deps: map[string]string{"mustache": "4.2.0"}, Files: map[string]string{"index.js": mustacheCompiler}}
	tarballs := t.TempDir()
	if err := os.WriteFile(filepath.Join(tarballs, comp.TarballName()), comp.Tarball(t), 0o644); err != nil {
		t.Fatal(err)
	}
	code := http.NewServeMux()
	code.HandleFunc("/mustache-email-compiler.js", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(mustacheCompiler)) })
	srv := httptest.NewServer(code)
	t.Cleanup(srv.Close)
	cfg := Config(t)
	cfg.API.AllowPrivateCodeURLs = true // the code server is on loopback
	cfg.Modules.TarballDir = tarballs
	e := Start(t, cfg)

	r := e.Call("POST", "/api/env/node/modules", e.Master, map[string]any{"modules": []map[string]string{
		{"name": "mustache-email-compiler", "version": "1.0.0"}, {"name": "mustache", "version": "4.2.0"}}})
	MustStatus(t, r, 200, "POST modules")
	WaitFor(t, "the compiler and mustache available", 3*time.Minute, func() bool {
		return moduleStates(t, e, "mustache-email-compiler")["1.0.0"].State == types.ModuleAvailable &&
			moduleStates(t, e, "mustache")["4.2.0"].State == types.ModuleAvailable
	})

	tpl := "<p>Hello {{query.name}}, key {{secrets.KEY}}</p>"
	deps := `{"mustache-email-compiler":"1.0.0","mustache":"4.2.0"}`
	for name, compiler := range map[string]string{"bymodule": "mustache-email-compiler", "byurl": srv.URL + "/mustache-email-compiler.js"} {
		MustStatus(t, e.Call("PUT", "/api/webtask/demo/"+name, e.Master, map[string]any{
			"code": tpl, "secrets": map[string]string{"KEY": "k-123"},
			"meta": map[string]string{"wt-compiler": compiler, "wt-node-dependencies": deps}}), 200, "PUT "+name)
		// Mustache escapes HTML: the query cannot inject markup.
		r := e.Call("GET", "/api/run/demo/"+name+"?name=Ada%3Cb%3E", "", nil)
		if want := `{"html":"<p>Hello Ada&lt;b&gt;, key k-123</p>"}`; r.Status != 200 || string(r.Body) != want {
			t.Fatalf("%s: %d %s, want %s", name, r.Status, r.Body, want)
		}
	}
}
