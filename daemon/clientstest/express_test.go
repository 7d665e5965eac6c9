package clientstest

import (
	"testing"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// expressCode is an Express app exported through webtask-tools, loaded
// from the daemon's --modules-dir (this directory's node_modules).
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

// TestExpressWebtaskTools runs a real Express app through
// webtask-tools.fromExpress: sub-path routing (req.x_wt.url_format 1),
// query strings, body-parser reading the unconsumed body, status codes.
func TestExpressWebtaskTools(t *testing.T) {
	t.Parallel()
	RequireRoot(t)
	modules := nodeModules(t)
	env, _ := startDaemon(t, modules)
	env.PutWebtask("web", "app", expressCode, map[string]string{"S": "sv"})

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
