package daemon_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
	"github.com/webtaskd/webtaskd/store/modules/modulestest"
)

// tplCompiler renders {{query.x}} and {{secrets.x}} (a Mustache-style
// e-mail template compiler in miniature).
const tplCompiler = `module.exports = function (options, cb) {
  const tpl = options.script;
  cb(null, function (ctx, cb) {
    cb(null, tpl.replace(/{{(query|secrets)\.(\w+)}}/g, (_, k, n) => String(ctx[k][n])));
  });
};`

// TestCompilersAndMiddlewareE2E: a template webtask compiled by a
// provisioned module and by a URL; middleware by URL with its
// short-circuit status; a cron job behind the built-in middleware compiler
// and cron-auth middleware runs and is recorded as a success (also after
// its webtask is updated), and a call with a wrong bearer gets 401.
func TestCompilersAndMiddlewareE2E(t *testing.T) {
	RequireRoot(t)
	if _, err := os.Stat("/usr/bin/npm"); err != nil {
		t.Skip("SKIPPED LOUDLY: no npm (make deps installs it)")
	}
	reg := modulestest.NewRegistry(t, modulestest.Package{Name: "wtd-tpl-compiler", Version: "1.0.0", Files: map[string]string{"index.js": tplCompiler}})
	t.Setenv("npm_config_registry", reg.URL())
	code := http.NewServeMux()
	code.HandleFunc("/compiler.js", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(tplCompiler)) })
	code.HandleFunc("/deny.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`module.exports = () => (req, res, next) => {
  if (req.headers['x-deny']) { const e = new Error('denied by middleware'); e.statusCode = 418; return next(e); }
  next();
};`))
	})
	srv := httptest.NewServer(code)
	t.Cleanup(srv.Close)
	cfg := Config(t)
	cfg.API.AllowPrivateCodeURLs = true // the code server is on loopback
	e := Start(t, cfg)
	put := func(name, code string, meta map[string]string) string {
		t.Helper()
		r := e.Call("PUT", "/api/webtask/demo/"+name, e.Master, map[string]any{"code": code, "secrets": map[string]string{"FROM": "us"}, "meta": meta})
		MustStatus(t, r, 200, "PUT "+name)
		var w types.Webtask
		r.JSON(t, &w)
		return w.Token
	}
	tpl := "Hello {{query.who}}, from {{secrets.FROM}}"

	// By module: declared, so this host installs it on demand.
	put("tplmod", tpl, map[string]string{"wt-compiler": "wtd-tpl-compiler", "wt-node-dependencies": `{"wtd-tpl-compiler":"1.0.0"}`})
	WaitFor(t, "the declared compiler installed on demand", 2*time.Minute, func() bool {
		return moduleStates(t, e, "wtd-tpl-compiler")["1.0.0"].State == types.ModuleAvailable
	})
	put("tplurl", tpl, map[string]string{"wt-compiler": srv.URL + "/compiler.js"})
	for _, name := range []string{"tplmod", "tplurl"} {
		r := e.Call("GET", "/api/run/demo/"+name+"?who=you", "", nil)
		if r.Status != 200 || string(r.Body) != `"Hello you, from us"` {
			t.Fatalf("%s: %d %s", name, r.Status, r.Body)
		}
	}

	// Middleware by URL.
	put("guarded", `module.exports = cb => cb(null, "through")`, map[string]string{
		"wt-compiler": "@webtask/middleware-compiler", "wt-middleware": srv.URL + "/deny.js"})
	if r := e.Call("GET", "/api/run/demo/guarded", "", nil); r.Status != 200 || string(r.Body) != `"through"` {
		t.Fatalf("guarded: %d %s", r.Status, r.Body)
	}
	if r := e.Call("GET", "/api/run/demo/guarded", "", nil, "x-deny", "1"); r.Status != 418 || !strings.Contains(string(r.Body), "denied by middleware") {
		t.Fatalf("guarded, denied: %d %s", r.Status, r.Body)
	}

	// What `wt cron create` without --no-auth makes.
	cronMeta := map[string]string{"wt-compiler": "@webtask/middleware-compiler", "wt-middleware": "@webtask/cron-auth-middleware"}
	tok := put("job", `module.exports = (ctx, cb) => cb(null, { ran: true })`, cronMeta)
	MustStatus(t, e.Call("PUT", "/api/cron/demo/job", e.Master, map[string]any{"schedule": "*/30 * * * *"}), 200, "PUT cron job")
	if r := e.Call("GET", "/api/run/demo/job", "", nil, "Authorization", "Bearer wrong"); r.Status != 401 || !strings.Contains(string(r.Body), "Unauthenticated extensibility point") {
		t.Fatalf("wrong bearer: %d %s", r.Status, r.Body)
	}
	if r := e.Call("GET", "/api/run/demo/job", "", nil, "Authorization", "Bearer "+tok); r.Status != 200 {
		t.Fatalf("the webtask's own token: %d %s", r.Status, r.Body)
	}
	for round := 0; round < 2; round++ {
		if round == 1 {
			put("job", `module.exports = (ctx, cb) => cb(null, { ran: 2 })`, cronMeta) // wt update: a new token
		}
		if err := e.D.RunCronNow("demo", "job"); err != nil {
			t.Fatal(err)
		}
		r := e.Call("GET", "/api/cron/demo/job/history", e.Master, nil)
		MustStatus(t, r, 200, "cron history")
		var hist []types.CronResult
		r.JSON(t, &hist)
		if len(hist) != round+1 || hist[0].Type != "success" || hist[0].StatusCode != 200 {
			t.Fatalf("round %d: cron history %s", round, r.Body)
		}
	}
}
