package agent_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// templateCompiler is a tiny template compiler ({{query.x}} and
// {{secrets.x}}), the shape of a Mustache e-mail template compiler.
const templateCompiler = `module.exports = function (options, cb) {
  const tpl = options.script;
  cb(null, function (ctx, cb) {
    cb(null, tpl.replace(/{{(query|secrets)\.(\w+)}}/g, (_, k, n) => String(ctx[k][n])));
  });
};`

// TestCompilerByModuleAndByURL: meta wt-compiler names a declared module
// (module/export too) or a URL whose code the daemon sent; the compiler
// gets the script, secrets and meta and hands back the webtask function.
func TestCompilerByModuleAndByURL(t *testing.T) {
	h := startAgent(t)
	writeStoreModule(t, h.storeDir, "kc", "tpl-compiler", "exports.render = "+strings.TrimPrefix(templateCompiler, "module.exports = ")+";", "")
	tpl := "Hello {{query.who}}, from {{secrets.FROM}}"
	byModule := newReq(tpl)
	byModule.CodeHash = hashOf(tpl + "module")
	byModule.URL = "/api/run/c/n?who=you"
	byModule.Secrets = map[string]any{"FROM": "us"}
	byModule.Meta = map[string]string{"wt-compiler": "tpl-compiler/render"}
	byModule.Modules = map[string]string{"tpl-compiler": "kc"}
	resp := h.do(t, byModule)
	if resp.Status != 200 || string(resp.Body) != `"Hello you, from us"` {
		t.Fatalf("compiler by module: %d %s", resp.Status, resp.Body)
	}

	byURL := newReq(tpl)
	byURL.CodeHash = hashOf(tpl + "url")
	byURL.URL = "/api/run/c/n?who=them"
	byURL.Secrets = map[string]any{"FROM": "url"}
	byURL.Meta = map[string]string{"wt-compiler": "https://example.com/compiler.js"}
	byURL.Extensions = map[string]string{"https://example.com/compiler.js": templateCompiler}
	resp = h.do(t, byURL)
	if resp.Status != 200 || string(resp.Body) != `"Hello them, from url"` {
		t.Fatalf("compiler by URL: %d %s", resp.Status, resp.Body)
	}

	broken := newReq(tpl)
	broken.CodeHash = hashOf(tpl + "broken")
	broken.Meta = map[string]string{"wt-compiler": "https://example.com/missing.js"}
	resp = h.do(t, broken)
	if resp.Status != 400 || !strings.Contains(string(resp.Body), "Unable to compile") {
		t.Fatalf("compiler whose code is missing: %d %s", resp.Status, resp.Body)
	}
}

// TestAsyncCompilerQueuesCalls: a compiler that calls back later makes
// the calls arriving meanwhile wait, then run with its function; it runs
// once.
func TestAsyncCompilerQueuesCalls(t *testing.T) {
	h := startAgent(t)
	compiler := `let runs = 0; module.exports = function (options, cb) {
  runs++;
  setTimeout(() => cb(null, (ctx, cb) => cb(null, { runs, q: ctx.query.n })), 50);
};`
	var wg sync.WaitGroup
	got := make([]string, 4)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := newReq("ignored")
			req.CodeHash = hashOf("async")
			req.URL = "/api/run/c/n?n=" + string(rune('a'+i))
			req.Meta = map[string]string{"wt-compiler": "https://example.com/async.js"}
			req.Extensions = map[string]string{"https://example.com/async.js": compiler}
			ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
			defer cancel()
			resp, err := h.client.Do(ctx, req)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = string(resp.Body)
		}()
	}
	wg.Wait()
	for i, g := range got {
		if want := `{"runs":1,"q":"` + string(rune('a'+i)) + `"}`; g != want {
			t.Errorf("call %d = %s, want %s", i, g, want)
		}
	}
}

func middlewareReq(code, middleware string) *agent.Request {
	req := newReq(code)
	req.CodeHash = hashOf(code + middleware)
	req.Meta = map[string]string{"wt-compiler": "@webtask/middleware-compiler", "wt-middleware": middleware}
	req.Token = "the-webtask-token"
	return req
}

// TestMiddlewareCompiler: the built-in @webtask/middleware-compiler runs
// the wt-middleware chain (URL code here; CSV and JSON array) before the
// webtask; next(err) answers err.statusCode; a 500 is masked; 1/2-arity
// webtasks get a parsed JSON body.
func TestMiddlewareCompiler(t *testing.T) {
	h := startAgent(t)
	const stamp = `module.exports = () => (req, res, next) => { req.webtaskContext.data.stamped = true; next(); };`
	const deny = `module.exports = () => (req, res, next) => {
  if (req.headers['x-deny']) { const e = new Error('go away'); e.statusCode = 418; e.code = 'teapot'; return next(e); }
  if (req.headers['x-boom']) return next(new Error('secret detail'));
  next();
};`
	code := `module.exports = (ctx, cb) => cb(null, { stamped: ctx.data.stamped === true, body: ctx.body || null });`
	mw := `["https://m.example/stamp.js","https://m.example/deny.js"]`
	ext := map[string]string{"https://m.example/stamp.js": stamp, "https://m.example/deny.js": deny}

	req := middlewareReq(code, mw)
	req.Extensions = ext
	req.Method = "POST"
	req.Headers = map[string][]string{"content-type": {"application/json"}}
	req.Body = []byte(`{"a":1}`)
	resp := h.do(t, req)
	if resp.Status != 200 || string(resp.Body) != `{"stamped":true,"body":{"a":1}}` {
		t.Fatalf("chain: %d %s", resp.Status, resp.Body)
	}
	req = middlewareReq(code, "https://m.example/stamp.js, https://m.example/deny.js")
	req.Extensions = ext
	req.Headers = map[string][]string{"x-deny": {"1"}}
	resp = h.do(t, req)
	if resp.Status != 418 || string(resp.Body) != `{"message":"go away","statusCode":418,"code":"teapot"}` {
		t.Fatalf("short-circuit: %d %s", resp.Status, resp.Body)
	}
	req.Headers = map[string][]string{"x-boom": {"1"}}
	resp = h.do(t, req)
	if resp.Status != 500 || string(resp.Body) != `{"message":"Server error","statusCode":500}` {
		t.Fatalf("500 masked: %d %s", resp.Status, resp.Body)
	}
}

// TestAuthMiddleware: the built-in cron-auth (bearer = the webtask's
// token) and bearer-auth (bearer = secret wt-auth-secret) middleware.
func TestAuthMiddleware(t *testing.T) {
	h := startAgent(t)
	code := `module.exports = (cb) => cb(null, 'ran');`
	for _, c := range []struct {
		middleware, auth string
		secret           bool
		status           int
		body             string
	}{
		{"@webtask/cron-auth-middleware", "Bearer the-webtask-token", false, 200, `"ran"`},
		{"@webtask/cron-auth-middleware", "Bearer another-token", false, 401, `{"message":"Unauthenticated extensibility point","statusCode":401}`},
		{"@webtask/cron-auth-middleware", "", false, 401, `{"message":"Unauthenticated extensibility point","statusCode":401}`},
		{"@webtask/bearer-auth-middleware", "Bearer s3cret", true, 200, `"ran"`},
		{"@webtask/bearer-auth-middleware", "Bearer nope", true, 401, `{"message":"Unauthenticated extensibility point","statusCode":401}`},
		{"@webtask/bearer-auth-middleware", "", false, 200, `"ran"`},
	} {
		req := middlewareReq(code, c.middleware)
		if c.auth != "" {
			req.Headers = map[string][]string{"authorization": {c.auth}}
		}
		if c.secret {
			req.Secrets = map[string]any{"wt-auth-secret": "s3cret"}
			req.CodeHash = hashOf(code + c.middleware + "secret")
		}
		resp := h.do(t, req)
		if resp.Status != c.status || string(resp.Body) != c.body {
			t.Errorf("%s with %q: %d %s, want %d %s", c.middleware, c.auth, resp.Status, resp.Body, c.status, c.body)
		}
	}
}
