package clientstest

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// expressDeps are the modules expressCode declares (meta
// wt-node-dependencies), provisioned through the API.
var expressDeps = map[string]string{"express": "4.21.2", "body-parser": "1.20.3", "webtask-tools": "3.4.1"}

// expressCode is an Express app exported through webtask-tools, its modules
// provisioned by the daemon from the npm registry.
const expressCode = `const express = require('express');
const bodyParser = require('body-parser');
const Webtask = require('webtask-tools');
const app = express();
app.use(bodyParser.json());
app.get('/', (req, res) => res.json({ root: true, url: req.url }));
app.get('/items/:id', (req, res) => res.json({
  id: req.params.id, q: req.query.q, url: req.url, original: req.originalUrl,
  secret: req.webtaskContext.secrets.S, jtn: req.x_wt.jtn,
}));
app.post('/items', (req, res) => res.status(201).json({ created: req.body }));
app.get('/redirect', (req, res) => res.redirect('/elsewhere'));
app.get('/boom', (req, res, next) => next(new Error('express error')));
app.use((req, res) => res.status(404).json({ nope: req.url }));
module.exports = Webtask.fromExpress(app);
`

// TestExpressWebtaskTools provisions express, body-parser and
// webtask-tools through POST /api/env/node/modules (the host's npm and
// registry; skipped loudly when the registry is unreachable), declares
// them in meta wt-node-dependencies and runs a real Express app through
// webtask-tools.fromExpress: sub-path routing (req.x_wt.url_format 1),
// query strings, body-parser reading the unconsumed body, status codes.
func TestExpressWebtaskTools(t *testing.T) {
	t.Parallel()
	RequireRoot(t)
	requireRegistry(t)
	env, _ := startDaemon(t, "")
	provision(t, env, expressDeps)
	deps, err := json.Marshal(expressDeps)
	if err != nil {
		t.Fatal(err)
	}
	MustStatus(t, env.Call("PUT", "/api/webtask/web/app", env.Master, map[string]any{
		"code": expressCode, "secrets": map[string]string{"S": "sv"},
		"meta": map[string]string{"wt-node-dependencies": string(deps)},
	}), 200, "PUT the Express webtask")

	var got map[string]any
	r := env.Call("GET", "/api/run/web/app/items/42?q=z", "", nil)
	MustStatus(t, r, 200, "GET /items/42")
	r.JSON(t, &got)
	if got["id"] != "42" || got["q"] != "z" || got["url"] != "/items/42?q=z" ||
		got["original"] != "/api/run/web/app/items/42?q=z" || got["secret"] != "sv" || got["jtn"] != "app" {
		t.Fatalf("GET /items/42 = %s", r.Body)
	}

	r = env.Call("POST", "/api/run/web/app/items", "", map[string]any{"a": 1, "b": []int{1, 2}})
	MustStatus(t, r, 201, "POST /items")
	got = nil
	r.JSON(t, &got)
	if c, ok := got["created"].(map[string]any); !ok || c["a"] != 1.0 || len(c["b"].([]any)) != 2 {
		t.Fatalf("POST /items = %s (body-parser must see the raw body)", r.Body)
	}

	r = env.Call("GET", "/api/run/web/app", "", nil)
	MustStatus(t, r, 200, "GET /")
	got = nil
	r.JSON(t, &got)
	if got["root"] != true || got["url"] != "/" {
		t.Fatalf("GET / = %s", r.Body)
	}

	r = env.Call("GET", "/api/run/web/app/redirect", "", nil)
	MustStatus(t, r, 302, "GET /redirect")
	if loc := r.Header.Get("Location"); loc != "/elsewhere" {
		t.Fatalf("GET /redirect: Location %q", loc)
	}

	r = env.Call("GET", "/api/run/web/app/boom", "", nil)
	MustStatus(t, r, 500, "GET /boom (next(err) reaches Express's error handler)")

	r = env.Call("GET", "/api/run/web/app/nowhere", "", nil)
	MustStatus(t, r, 404, "GET /nowhere")
	got = nil
	r.JSON(t, &got)
	if got["nope"] != "/nowhere" {
		t.Fatalf("GET /nowhere = %s", r.Body)
	}
}

// requireRegistry skips, loudly, when the host's npm registry does not
// answer.
func requireRegistry(t *testing.T) {
	t.Helper()
	out, err := exec.Command("npm", "config", "get", "registry").Output()
	reg := strings.TrimRight(strings.TrimSpace(string(out)), "/")
	if err != nil || reg == "" {
		t.Skip("SKIPPED LOUDLY: no npm, or no npm registry configured")
	}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(reg + "/webtask-tools")
	if err != nil {
		t.Skipf("SKIPPED LOUDLY: the npm registry %s is unreachable: %v", reg, err)
	}
	resp.Body.Close()
}

// provision requests deps through the API and waits until every one is
// available (failing on a failed install, with npm's message).
func provision(t *testing.T, env *Env, deps map[string]string) {
	t.Helper()
	req := types.ModulesRequest{}
	for n, v := range deps {
		req.Modules = append(req.Modules, types.ModuleSpec{Name: n, Version: v})
	}
	MustStatus(t, env.Call("POST", "/api/env/node/modules", env.Master, req), 200, "POST modules")
	WaitFor(t, "modules available", 5*time.Minute, func() bool {
		for n, v := range deps {
			r := env.Call("GET", "/api/env/node/modules/"+n, "", nil)
			var list []types.Module
			r.JSON(t, &list)
			for _, m := range list {
				if m.Version != v {
					continue
				}
				if m.State == types.ModuleFailed {
					t.Fatalf("%s@%s failed: %s", n, v, m.Error)
				}
				if m.State != types.ModuleAvailable {
					return false
				}
			}
		}
		return true
	})
}
