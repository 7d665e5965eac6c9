package clientstest

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

const helloV1 = `module.exports = function (ctx, cb) {
  console.log('hello-marker ' + (ctx.query.m || ''));
  cb(null, { v: 1, secret: ctx.secrets.SECRET, param: ctx.params.P, meta: ctx.meta.k, body: ctx.body || null });
};
`

const helloV2 = `module.exports = function (ctx, cb) {
  cb(null, { v: 2, secret: ctx.secrets.SECRET, param: ctx.params.P, meta: ctx.meta.k });
};
`

var urlRe = regexp.MustCompile(`https?://[^\s]+`)

// TestWtCLI drives the real wt-cli 11.0.2 through every command the
// reference lists, against a daemon started here.
func TestWtCLI(t *testing.T) {
	t.Parallel()
	RequireRoot(t)
	modules := nodeModules(t)
	env, _ := startDaemon(t, "")
	const c = "clients"
	tenant := tenantToken(t, env, c)
	wt := newWT(t, modules)

	// init: non-interactive, no network call.
	wt.must("init", "--url", env.Base, "--token", tenant, "--container", c)
	if out := wt.must("profile", "ls"); !strings.Contains(out, c) {
		t.Fatalf("profile ls does not show the container:\n%s", out)
	}

	// create with secrets, params, meta and --parse-body.
	wt.write("hello.js", helloV1)
	out := wt.must("create", "hello.js", "--name", "hello", "-s", "SECRET=s3cr3t", "--param", "P=p",
		"--meta", "k=v", "--meta", "team=a", "--parse-body", "--ignore-package-json")
	u := urlRe.FindString(out)
	if u != env.Base+"/api/run/"+c+"/hello" {
		t.Fatalf("wt create printed URL %q, want %s/api/run/%s/hello", u, env.Base, c)
	}

	// invoke: secrets, params, meta, parsed body.
	r := env.Call("POST", strings.TrimPrefix(u, env.Base)+"?m=first", "", map[string]string{"b": "x"})
	MustStatus(t, r, 200, "invoke hello")
	var res map[string]any
	r.JSON(t, &res)
	if res["v"] != 1.0 || res["secret"] != "s3cr3t" || res["param"] != "p" || res["meta"] != "v" ||
		res["body"].(map[string]any)["b"] != "x" {
		t.Fatalf("hello answered %s", r.Body)
	}

	// ls, ls --meta.
	listed := regexp.MustCompile(`Name:\s+hello\b`)
	if out := wt.must("ls"); !listed.MatchString(out) {
		t.Fatalf("wt ls does not list hello:\n%s", out)
	}
	if out := wt.must("ls", "--meta", "team=a"); !listed.MatchString(out) {
		t.Fatalf("wt ls --meta team=a does not list hello:\n%s", out)
	}
	if out := wt.must("ls", "--meta", "team=b"); listed.MatchString(out) {
		t.Fatalf("wt ls --meta team=b lists hello:\n%s", out)
	}

	// inspect --decrypt --fetch-code.
	out = wt.must("inspect", "hello", "--decrypt", "--fetch-code")
	for _, want := range []string{"s3cr3t", "hello-marker", "team"} {
		if !strings.Contains(out, want) {
			t.Fatalf("wt inspect --decrypt --fetch-code lacks %q:\n%s", want, out)
		}
	}
	if out := wt.must("inspect", "hello"); strings.Contains(out, "s3cr3t") {
		t.Fatalf("wt inspect without --decrypt shows the secret:\n%s", out)
	}

	// update: new code, secrets/params/meta survive.
	wt.write("hello2.js", helloV2)
	wt.must("update", "hello", "hello2.js", "--ignore-package-json")
	r = env.Call("GET", "/api/run/"+c+"/hello", "", nil)
	MustStatus(t, r, 200, "invoke updated hello")
	res = nil
	r.JSON(t, &res)
	if res["v"] != 2.0 || res["secret"] != "s3cr3t" || res["param"] != "p" || res["meta"] != "v" {
		t.Fatalf("after wt update hello answered %s (secrets, params and meta must survive)", r.Body)
	}

	// logs: a marker printed by a webtask arrives within 2 s.
	wt.write("logger.js", `module.exports = function (ctx, cb) { console.log('log-marker ' + ctx.query.m); cb(null, {}); };`)
	wt.must("create", "logger.js", "--name", "logger", "--ignore-package-json")
	logs := wt.start("logs")
	logs.waitLine(t, "connected to streaming logs", 30*time.Second)
	marker := "m-" + RandHex(6)
	r = env.Call("GET", "/api/run/"+c+"/logger?m="+marker, "", nil)
	MustStatus(t, r, 200, "invoke logger")
	answered := time.Now()
	arrived := logs.waitLine(t, "log-marker "+marker, 2*time.Second)
	t.Logf("log marker arrived %s after the webtask answered", arrived.Sub(answered))
	logs.stop(t)

	// cron create --no-auth / ls / get / history / rm.
	wt.write("tick.js", `module.exports = function (ctx, cb) { cb(null, { tick: true }); };`)
	out = wt.must("cron", "create", "--no-auth", "--schedule", "* * * * *", "--tz", "Europe/Paris",
		"--name", "tick", "--meta", "kind=cron", "tick.js", "--ignore-package-json")
	for _, want := range []string{"tick", "active", "* * * * *", "Europe/Paris", "Next run"} {
		if !strings.Contains(out, want) {
			t.Fatalf("wt cron create output lacks %q:\n%s", want, out)
		}
	}
	if out := wt.must("cron", "ls"); !strings.Contains(out, "tick") {
		t.Fatalf("wt cron ls does not list tick:\n%s", out)
	}
	if out := wt.must("cron", "ls", "--meta", "kind=cron"); !strings.Contains(out, "tick") {
		t.Fatalf("wt cron ls --meta kind=cron does not list tick:\n%s", out)
	}
	if out := wt.must("cron", "get", "tick"); !strings.Contains(out, "* * * * *") || !strings.Contains(out, "Europe/Paris") {
		t.Fatalf("wt cron get tick:\n%s", out)
	}
	wt.must("cron", "history", "tick")
	out = wt.must("cron", "reschedule", "tick", "--schedule", "10m", "--state", "inactive")
	if !strings.Contains(out, "inactive") || !strings.Contains(out, "/10 * * * *") || !strings.Contains(out, "Meta.kind") {
		t.Fatalf("wt cron reschedule tick --schedule 10m --state inactive:\n%s", out)
	}
	if out := wt.must("cron", "history", "tick", "-o", "json"); !strings.HasPrefix(strings.TrimSpace(out), "[") {
		t.Fatalf("wt cron history -o json is not an array:\n%s", out)
	}
	wt.must("cron", "rm", "tick")
	if _, code := wt.run("cron", "get", "tick"); code != 5 {
		t.Fatalf("wt cron get of a removed job: exit %d, want 5", code)
	}
	if _, code := wt.run("cron", "rm", "tick"); code != 5 {
		t.Fatalf("wt cron rm of a removed job: exit %d, want 5", code)
	}

	// token create --ten, then revoke: the token stops working.
	out = wt.must("token", "create", "--ten", c)
	child := strings.TrimSpace(out)
	if strings.Count(child, ".") != 2 {
		t.Fatalf("wt token create printed %q, want a JWT", out)
	}
	MustStatus(t, env.Call("GET", "/api/webtask/"+c, child, nil), 200, "list with the created token")
	if out := wt.must("token", "inspect", child); !strings.Contains(out, c) {
		t.Fatalf("wt token inspect does not show the container:\n%s", out)
	}
	wt.must("token", "revoke", child)
	r = env.Call("GET", "/api/webtask/"+c, child, nil)
	MustStatus(t, r, 403, "list with the revoked token")

	// rm deletes the webtask, its storage and its cron job.
	wt.must("cron", "create", "--no-auth", "--schedule", "*/5 * * * *", "--name", "doomed", "tick.js", "--ignore-package-json")
	MustStatus(t, env.Call("PUT", "/api/webtask/"+c+"/doomed/data", tenant, map[string]any{"data": `{"n":1}`}), 200, "store data")
	wt.must("rm", "doomed")
	MustStatus(t, env.Call("GET", "/api/cron/"+c+"/doomed", tenant, nil), 404, "cron job of a removed webtask")
	MustStatus(t, env.Call("GET", "/api/webtask/"+c+"/doomed/data", tenant, nil), 404, "storage of a removed webtask")
	wt.must("create", "tick.js", "--name", "doomed", "--ignore-package-json")
	if r := env.Call("GET", "/api/webtask/"+c+"/doomed/data", tenant, nil); r.Status == 200 {
		var d struct {
			Data string `json:"data"`
		}
		r.JSON(t, &d)
		if strings.Contains(d.Data, `"n"`) {
			t.Fatalf("a re-created webtask sees the removed one's storage: %s", r.Body)
		}
	}

	// rm, then the exit codes wt derives from the daemon's 404.
	wt.must("rm", "hello")
	MustStatus(t, env.Call("GET", "/api/run/"+c+"/hello", "", nil), http.StatusNotFound, "run a removed webtask")
	if out, code := wt.run("rm", "hello"); code != 5 {
		t.Fatalf("wt rm of a missing webtask: exit %d, want 5\n%s", code, out)
	}
	if out, code := wt.run("inspect", "hello"); code != 6 {
		t.Fatalf("wt inspect of a missing webtask: exit %d, want 6\n%s", code, out)
	}
	if out := wt.must("ls"); listed.MatchString(out) {
		t.Fatalf("wt ls still lists hello after rm:\n%s", out)
	}
}
