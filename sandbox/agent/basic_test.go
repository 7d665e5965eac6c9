package agent_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// progCase is one programming-model case: code plus request tweaks, and
// the expected status and (JSON-decoded, or raw) body.
type progCase struct {
	name     string
	code     string
	tweak    func(r *agent.Request)
	status   int
	wantJSON string            // compared after decoding both sides
	wantRaw  string            // compared byte for byte
	wantHdr  map[string]string // first value of each header
	check    func(t *testing.T, body any)
}

func runCases(t *testing.T, cases []progCase) {
	t.Helper()
	h := startAgent(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newReq(tc.code)
			if tc.tweak != nil {
				tc.tweak(r)
			}
			resp := h.do(t, r)
			if resp.Status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", resp.Status, tc.status, resp.Body)
			}
			if tc.wantRaw != "" && string(resp.Body) != tc.wantRaw {
				t.Fatalf("body = %q, want %q", resp.Body, tc.wantRaw)
			}
			if tc.wantJSON != "" {
				var want any
				if err := json.Unmarshal([]byte(tc.wantJSON), &want); err != nil {
					t.Fatalf("bad wantJSON: %v", err)
				}
				if got := jsonBody(t, resp); !reflect.DeepEqual(got, want) {
					t.Fatalf("body = %s\nwant   %s", resp.Body, tc.wantJSON)
				}
			}
			for k, v := range tc.wantHdr {
				if got := resp.Headers[k]; len(got) == 0 || got[0] != v {
					t.Fatalf("header %q = %v, want %q (all: %v)", k, got, v, resp.Headers)
				}
			}
			if tc.check != nil {
				tc.check(t, jsonBody(t, resp))
			}
		})
	}
}

func TestSignatures(t *testing.T) {
	runCases(t, []progCase{
		{name: "1-arity", code: `module.exports = function (cb) { cb(null, 'Hello'); }`,
			status: 200, wantRaw: `"Hello"`, wantHdr: map[string]string{"content-type": "application/json"}},
		{name: "2-arity", code: `module.exports = function (ctx, cb) { cb(null, {id: ctx.id}); }`,
			status: 200, wantJSON: `{"id":"req-1"}`},
		{name: "3-arity", code: `module.exports = function (ctx, req, res) {
				res.writeHead(201, {'Content-Type': 'text/plain', 'X-A': 'b'}); res.end('made ' + req.method); }`,
			tweak:  func(r *agent.Request) { r.Method = "POST" },
			status: 201, wantRaw: "made POST", wantHdr: map[string]string{"content-type": "text/plain", "x-a": "b"}},
		{name: "top-level return wins", code: `module.exports = function (cb) { cb(null, 'exports'); };
				return function (cb) { cb(null, 'returned'); };`,
			status: 200, wantRaw: `"returned"`},
		{name: "BOM stripped", code: "\ufeffmodule.exports = function (cb) { cb(null, 1); }",
			status: 200, wantRaw: `1`},
		{name: "async 2-arity resolves", code: `module.exports = async function (ctx, cb) { await null; return {a: 1}; }`,
			status: 200, wantJSON: `{"a":1}`},
		{name: "async 1-arity rejects", code: `module.exports = async (cb) => { throw new Error('nope'); }`,
			status: 400, wantJSON: `{"code":400,"error":"Script returned an error.","details":"Error: nope","name":"Error","message":"nope"}`},
		{name: "promise and callback: first wins", code: `module.exports = async function (cb) { cb(null, 'cb'); return 'promise'; }`,
			status: 200, wantRaw: `"cb"`},
		{name: "callback twice ignored", code: `module.exports = function (cb) { cb(null, 1); cb(new Error('late')); cb(null, 2); }`,
			status: 200, wantRaw: `1`},
		{name: "falsy result is {}", code: `module.exports = function (cb) { cb(null, 0); }`,
			status: 200, wantRaw: `{}`},
		{name: "undefined result is {}", code: `module.exports = function (cb) { cb(); }`,
			status: 200, wantRaw: `{}`},
		{name: "async callback", code: `module.exports = function (cb) { setTimeout(() => cb(null, [1,2]), 1); }`,
			status: 200, wantRaw: `[1,2]`},
		{name: "module.webtask at load", code: `var s = module.webtask.secrets.S, m = module.webtask.meta.M;
				module.exports = function (cb) { cb(null, {s: s, m: m}); }`,
			tweak: func(r *agent.Request) {
				r.Secrets = map[string]any{"S": "sec"}
				r.Meta = map[string]string{"M": "meta"}
			},
			status: 200, wantJSON: `{"s":"sec","m":"meta"}`},
		{name: "require builtin", code: `const c = require('crypto');
				module.exports = function (cb) { cb(null, c.createHash('sha1').update('a').digest('hex')); }`,
			status: 200, wantRaw: `"86f7e437faa5a7fce15d1ddcb9eaeaea377667b8"`},
	})
}

func TestErrors(t *testing.T) {
	runCases(t, []progCase{
		{name: "cb(err) 400", code: `module.exports = function (cb) { var e = new Error('boom'); e.extra = 7; cb(e); }`,
			status: 400, wantJSON: `{"code":400,"error":"Script returned an error.","details":"Error: boom","name":"Error","message":"boom","extra":7}`},
		{name: "cb(string) 400", code: `module.exports = function (cb) { cb('plain'); }`,
			status: 400, wantJSON: `{"code":400,"error":"Script returned an error.","details":"plain"}`},
		{name: "cb(object) 400", code: `module.exports = function (cb) { cb({why: 'x'}); }`,
			status: 400, wantJSON: `{"code":400,"error":"Script returned an error.","details":{"why":"x"}}`},
		{name: "cb(object with name and message) 400", code: `module.exports = function (cb) { cb({why: 'x', name: 'N', message: 'm'}); }`,
			status: 400, wantJSON: `{"code":400,"error":"Script returned an error.","details":{"why":"x","name":"N","message":"m"},"name":"N","message":"m"}`},
		{name: "sync throw 500", code: `module.exports = function (ctx, cb) { throw new TypeError('bad'); }`,
			status: 500, wantJSON: `{"code":500,"error":"Script generated an unhandled synchronous exception.","details":"TypeError: bad","name":"TypeError","message":"bad"}`},
		{name: "3-arity sync throw 500", code: `module.exports = function (ctx, req, res) { throw new Error('x'); }`,
			status: 500, wantJSON: `{"code":500,"error":"Script generated an unhandled synchronous exception.","details":"Error: x","name":"Error","message":"x"}`},
		{name: "unserializable 400", code: `module.exports = function (cb) { var a = {}; a.a = a; cb(null, a); }`,
			status: 400, check: func(t *testing.T, b any) {
				m := b.(map[string]any)
				if m["code"] != 400.0 || m["error"] != "Error when JSON serializing the result of the JavaScript code." ||
					m["name"] != "TypeError" || !strings.HasPrefix(m["details"].(string), "TypeError: Converting circular structure to JSON") {
					t.Fatalf("got %v", m)
				}
			}},
		{name: "syntax error 400", code: `module.exports = function (cb) { cb(null, ; }`,
			status: 400, check: func(t *testing.T, b any) {
				m := b.(map[string]any)
				if m["code"] != 400.0 || !strings.HasPrefix(m["error"].(string), "Unable to compile submitted JavaScript: SyntaxError: ") {
					t.Fatalf("got %v", m)
				}
				if d, _ := m["details"].(string); !strings.HasPrefix(d, "SyntaxError: ") || d != "SyntaxError: "+m["message"].(string) || m["name"] != "SyntaxError" {
					t.Fatalf("details %q, name %v, message %v", d, m["name"], m["message"])
				}
			}},
		// The reference runtime's (webtask-runtime 2.0) compile errors, word for word.
		{name: "no function 400", code: `module.exports = 42;`,
			status: 400, wantJSON: `{"code":400,"error":"Unable to compile submitted JavaScript. Error: Supplied code must return or export a function.","details":"Unable to compile submitted JavaScript. Error: Supplied code must return or export a function."}`},
		{name: "empty code 400", code: ``, tweak: func(r *agent.Request) { r.CodeHash = hashOf("") },
			status: 400, wantJSON: `{"code":400,"error":"Unable to compile submitted JavaScript. Error: Supplied code must return or export a function.","details":"Unable to compile submitted JavaScript. Error: Supplied code must return or export a function."}`},
		{name: "arity 0 400", code: `module.exports = function () {};`,
			status: 400, wantJSON: `{"code":400,"error":"Unable to compile submitted JavaScript. Error: The JavaScript function must have one of the following signatures: ([ctx], callback) or (ctx, req, res).","details":"Unable to compile submitted JavaScript. Error: The JavaScript function must have one of the following signatures: ([ctx], callback) or (ctx, req, res)."}`},
		{name: "arity 4 400", code: `module.exports = function (a, b, c, d) {};`,
			status: 400, wantJSON: `{"code":400,"error":"Unable to compile submitted JavaScript. Error: The JavaScript function must have one of the following signatures: ([ctx], callback) or (ctx, req, res).","details":"Unable to compile submitted JavaScript. Error: The JavaScript function must have one of the following signatures: ([ctx], callback) or (ctx, req, res)."}`},
		{name: "missing module 400", code: `var t = require('webtask-tools'); module.exports = function (cb) { cb(); };`,
			status: 400, wantJSON: `{"code":400,"error":"Unable to compile submitted JavaScript. Error: Cannot find module \"webtask-tools\"","details":"Error: Cannot find module \"webtask-tools\""}`},
		{name: "load-time throw 400", code: `throw new Error('at load');`,
			status: 400, wantJSON: `{"code":400,"error":"Unable to compile submitted JavaScript: Error: at load","details":"Error: at load","name":"Error","message":"at load"}`},
		{name: "load-time throw of a string 400", code: `throw 'str';`,
			status: 400, wantJSON: `{"code":400,"error":"Unable to compile submitted JavaScript: str","details":"str"}`},
		{name: "storage without a daemon handler", code: `module.exports = function (ctx, cb) { ctx.storage.get(function (err, d) { cb(null, {err: err && err.message, code: err && err.code}); }); }`,
			status: 200, wantJSON: `{"err":"storage is not available","code":503}`},
	})
}

func TestContext(t *testing.T) {
	echoCtx := `module.exports = function (ctx, cb) { cb(null, {
		data: ctx.data, query: ctx.query, secrets: ctx.secrets, params: ctx.params, meta: ctx.meta,
		headers: ctx.headers, id: ctx.id, token: ctx.token,
		has_raw: 'body_raw' in ctx, body_raw: ctx.body_raw, body: ctx.body }); }`
	echo3 := `module.exports = function (ctx, req, res) {
		var chunks = [];
		req.on('data', function (c) { chunks.push(c); });
		req.on('end', function () {
			res.setHeader('content-type', 'application/json');
			res.end(JSON.stringify({stream: Buffer.concat(chunks).toString(), has_raw: 'body_raw' in ctx, body: ctx.body}));
		});
	}`
	jsonPost := func(pb, mb int, url, ct, body string) func(r *agent.Request) {
		return func(r *agent.Request) {
			r.Method = "POST"
			r.PB, r.MB = pb, mb
			if url != "" {
				r.URL = url
			}
			r.Headers["content-type"] = []string{ct}
			r.Body = []byte(body)
		}
	}
	runCases(t, []progCase{
		{name: "ctx fields and merge order", code: echoCtx,
			tweak: func(r *agent.Request) {
				r.URL = "/api/run/c/n?q=1&shared=query&webtask_no_cache=1&webtask_pb=0&arr=a&arr=b"
				r.Params = map[string]any{"p": "P", "shared": "params"}
				r.Secrets = map[string]any{"s": "S", "shared": "secrets"}
				r.Meta = map[string]string{"m": "M"}
				r.Headers = map[string][]string{"x-multi": {"a", "b"}, "Content-Type": {"text/plain"}}
				r.Token = "tok"
				r.ReqID = "rid-9"
				r.PB = 0
			},
			status: 200, wantJSON: `{
				"data": {"q":"1","shared":"secrets","arr":["a","b"],"p":"P","s":"S"},
				"query": {"q":"1","shared":"query","arr":["a","b"]},
				"secrets": {"s":"S","shared":"secrets"}, "params": {"p":"P","shared":"params"}, "meta": {"m":"M"},
				"headers": {"x-multi":"a, b","content-type":"text/plain"},
				"id":"rid-9","token":"tok","has_raw":false}`},
		{name: "empty meta is {}", code: `module.exports = function (ctx, cb) { cb(null, {meta: ctx.meta, secrets: ctx.secrets}); }`,
			status: 200, wantJSON: `{"meta":{},"secrets":{}}`},
		{name: "pb=1 json", code: echoCtx, tweak: jsonPost(1, 0, "", "application/json; charset=utf-8", `{"b":1}`),
			status: 200, check: func(t *testing.T, b any) {
				m := b.(map[string]any)
				if !reflect.DeepEqual(m["body"], map[string]any{"b": 1.0}) || m["body_raw"] != `{"b":1}` {
					t.Fatalf("got %v", m)
				}
				if _, ok := m["data"].(map[string]any)["b"]; ok {
					t.Fatalf("mb=0 merged body into data: %v", m["data"])
				}
			}},
		{name: "pb=0 no body", code: echoCtx, tweak: jsonPost(0, 0, "", "application/json", `{"b":1}`),
			status: 200, check: func(t *testing.T, b any) {
				if m := b.(map[string]any); m["has_raw"] != false || m["body"] != nil {
					t.Fatalf("got %v", m)
				}
			}},
		{name: "pb=2 by arity parses for 2-arity", code: echoCtx, tweak: jsonPost(2, 0, "", "application/json", `[1,2]`),
			status: 200, check: func(t *testing.T, b any) {
				if m := b.(map[string]any); !reflect.DeepEqual(m["body"], []any{1.0, 2.0}) {
					t.Fatalf("got %v", m)
				}
			}},
		{name: "urlencoded + mb=1 does not override", code: echoCtx,
			tweak:  jsonPost(1, 1, "/api/run/c/n?a=query", "application/x-www-form-urlencoded", "a=body&b=2&c=x+y"),
			status: 200, check: func(t *testing.T, b any) {
				m := b.(map[string]any)
				if want := map[string]any{"a": "body", "b": "2", "c": "x y"}; !reflect.DeepEqual(m["body"], want) {
					t.Fatalf("body %v", m["body"])
				}
				if want := map[string]any{"a": "query", "b": "2", "c": "x y"}; !reflect.DeepEqual(m["data"], want) {
					t.Fatalf("data %v", m["data"])
				}
			}},
		{name: "webtask_pb and webtask_mb query switches", code: echoCtx,
			tweak:  jsonPost(0, 0, "/api/run/c/n?webtask_pb=1&webtask_mb=1", "application/json", `{"k":"v"}`),
			status: 200, check: func(t *testing.T, b any) {
				m := b.(map[string]any)
				if m["data"].(map[string]any)["k"] != "v" || len(m["query"].(map[string]any)) != 0 {
					t.Fatalf("got %v", m)
				}
			}},
		{name: "webtask_pb=0 does not turn parsing off", code: echoCtx,
			tweak:  jsonPost(2, 0, "/api/run/c/n?webtask_pb=0", "application/json", `{"k":"v"}`),
			status: 200, check: func(t *testing.T, b any) {
				if m := b.(map[string]any); !reflect.DeepEqual(m["body"], map[string]any{"k": "v"}) {
					t.Fatalf("got %v", m)
				}
			}},
		{name: "only webtask_pb=1 turns parsing on", code: echoCtx,
			tweak:  jsonPost(0, 0, "/api/run/c/n?webtask_pb=true&webtask_mb=1", "application/json", `{"k":"v"}`),
			status: 200, check: func(t *testing.T, b any) {
				if m := b.(map[string]any); m["has_raw"] != false || m["body"] != nil || m["data"].(map[string]any)["k"] != nil {
					t.Fatalf("got %v", m)
				}
			}},
		{name: "bad json ignored", code: echoCtx, tweak: jsonPost(1, 1, "", "application/json", `{nope`),
			status: 200, check: func(t *testing.T, b any) {
				if m := b.(map[string]any); m["body_raw"] != "{nope" || m["body"] != nil {
					t.Fatalf("got %v", m)
				}
			}},
		{name: "3-arity pb=2 leaves stream unread", code: echo3, tweak: jsonPost(2, 0, "", "application/json", `{"x":1}`),
			status: 200, wantJSON: `{"stream":"{\"x\":1}","has_raw":false}`},
		{name: "3-arity pb=0 leaves stream unread", code: echo3, tweak: jsonPost(0, 0, "", "text/plain", "raw text"),
			status: 200, wantJSON: `{"stream":"raw text","has_raw":false}`},
		{name: "3-arity pb=1 parses, stream empty", code: echo3, tweak: jsonPost(1, 0, "", "application/json", `{"x":1}`),
			status: 200, wantJSON: `{"stream":"","has_raw":true,"body":{"x":1}}`},
	})
}

func TestHTTPResponse(t *testing.T) {
	runCases(t, []progCase{
		{name: "setHeader/getHeader/statusCode/write/end", code: `module.exports = function (ctx, req, res) {
				res.statusCode = 418;
				res.setHeader('X-Multi', ['a', 'b']);
				res.setHeader('Content-Type', 'text/plain');
				var before = res.headersSent;
				res.write('a');
				res.write(Buffer.from('b'));
				res.end('c|' + res.getHeader('content-type') + '|' + before + '|' + res.headersSent);
			}`,
			status: 418, wantRaw: "abc|text/plain|false|true",
			check: nil},
		{name: "pipe from a readable", code: `const { Readable } = require('stream');
			module.exports = function (ctx, req, res) {
				res.writeHead(202, 'Accepted', [['x-pair', '1']]);
				var done = false;
				res.on('finish', function () { done = true; });
				Readable.from(['x', 'y', 'z']).pipe(res);
			}`,
			status: 202, wantRaw: "xyz", wantHdr: map[string]string{"x-pair": "1"}},
		{name: "headers after send throw", code: `module.exports = function (ctx, req, res) {
				res.writeHead(200);
				var threw = false;
				try { res.setHeader('x', 'y'); } catch (e) { threw = e.code; }
				res.end(String(threw));
			}`,
			status: 200, wantRaw: "ERR_HTTP_HEADERS_SENT"},
		{name: "async handler", code: `module.exports = async function (ctx, req, res) {
				await new Promise(function (r) { setTimeout(r, 1); });
				res.statusCode = 503; res.end('later');
			}`,
			status: 503, wantRaw: "later"},
		{name: "async handler rejects", code: `module.exports = async function (ctx, req, res) { throw new Error('rej'); }`,
			status: 500, wantJSON: `{"code":500,"error":"Script generated an unhandled asynchronous exception.","details":"Error: rej","name":"Error","message":"rej"}`},
		{name: "req fields and x-wt-params", code: `module.exports = function (ctx, req, res) {
				var p = JSON.parse(Buffer.from(req.headers['x-wt-params'], 'base64').toString());
				res.setHeader('content-type', 'application/json');
				res.end(JSON.stringify({url: req.url, method: req.method, x_wt: req.x_wt, params: p, host: req.headers.host,
					isIM: req instanceof require('http').IncomingMessage,
					isSR: res instanceof require('http').ServerResponse}));
			}`,
			tweak: func(r *agent.Request) {
				r.URL = "/api/run/c/n/sub/path?x=1"
				r.Method = "PUT"
				r.Secrets = map[string]any{"S": "1"}
				r.Params = map[string]any{"P": "2"}
				r.Meta = map[string]string{"M": "3"}
				r.Token = "t"
				r.PB, r.MB = 0, 1
			},
			status: 200, check: func(t *testing.T, b any) {
				m := b.(map[string]any)
				xwt := map[string]any{"container": "c", "jtn": "n", "mb": 1.0, "pb": 0.0, "pctx": map[string]any{"P": "2"},
					"ectx": map[string]any{"S": "1"}, "meta": map[string]any{"M": "3"}, "token": "t", "req_id": "req-1", "url_format": 1.0}
				if m["url"] != "/api/run/c/n/sub/path?x=1" || m["method"] != "PUT" || m["host"] != "localhost" ||
					m["isIM"] != true || m["isSR"] != true ||
					!reflect.DeepEqual(m["x_wt"], xwt) || !reflect.DeepEqual(m["params"], xwt) {
					t.Fatalf("got %v", m)
				}
			}},
		{name: "live request as on-finished sees it", code: `module.exports = function (ctx, req, res) {
				// on-finished (used by body-parser, finalhandler) treats a request whose socket is not
				// readable as finished, and a response whose socket is not writable as ended.
				var reqLive = !!(req.socket && req.socket.readable && !req.upgrade);
				var resLive = !res.writableEnded && !(res.socket && !res.socket.writable);
				res.on('finish', function () {});
				res.end(JSON.stringify({reqLive: reqLive, resLive: resLive, complete: req.complete}));
			}`,
			status: 200, wantJSON: `{"reqLive":true,"resLive":true,"complete":true}`},
	})
}

// TestExpressLikeRouting runs a tiny connect-style router that strips the
// webtask prefix chosen by req.x_wt.url_format, as webtask-tools does.
func TestExpressLikeRouting(t *testing.T) {
	code := `
function fromConnect(app) {
	return function (ctx, req, res) {
		var prefix;
		switch (req.x_wt.url_format) {
		case 1: prefix = '/api/run/' + req.x_wt.container + '/' + req.x_wt.jtn; break;
		case 3: prefix = '/' + req.x_wt.jtn; break;
		default: throw new Error('unsupported url_format');
		}
		req.originalUrl = req.url;
		req.url = req.url.slice(prefix.length) || '/';
		if (req.url[0] === '?') req.url = '/' + req.url;
		req.webtaskContext = ctx;
		app.handle(req, res);
	};
}
function App() { this.stack = []; }
App.prototype.get = function (p, fn) { this.stack.push({m: 'GET', p: p, fn: fn}); };
App.prototype.post = function (p, fn) { this.stack.push({m: 'POST', p: p, fn: fn}); };
App.prototype.handle = function (req, res) {
	var path = req.url.split('?')[0];
	req.query = require('querystring').parse(req.url.split('?')[1] || '');
	for (var i = 0; i < this.stack.length; i++) {
		var l = this.stack[i];
		if (l.m === req.method && l.p === path) return l.fn(req, res);
	}
	res.statusCode = 404; res.end('Cannot ' + req.method + ' ' + path);
};
var app = new App();
app.get('/sub', function (req, res) {
	res.setHeader('content-type', 'application/json');
	res.end(JSON.stringify({x: req.query.x, orig: req.originalUrl, secret: req.webtaskContext.secrets.S}));
});
app.post('/echo', function (req, res) {
	var b = ''; req.setEncoding('utf8');
	req.on('data', function (c) { b += c; });
	req.on('end', function () { res.statusCode = 201; res.end(b.toUpperCase()); });
});
module.exports = fromConnect(app);`
	runCases(t, []progCase{
		{name: "GET sub-path", code: code,
			tweak: func(r *agent.Request) {
				r.URL = "/api/run/c/n/sub?x=1"
				r.Secrets = map[string]any{"S": "s3"}
			},
			status: 200, wantJSON: `{"x":"1","orig":"/api/run/c/n/sub?x=1","secret":"s3"}`},
		{name: "POST body read by the app", code: code,
			tweak: func(r *agent.Request) {
				r.Method = "POST"
				r.URL = "/api/run/c/n/echo"
				r.Body = []byte("shout")
			},
			status: 201, wantRaw: "SHOUT"},
		{name: "404", code: code, tweak: func(r *agent.Request) { r.URL = "/api/run/c/n/none" },
			status: 404, wantRaw: "Cannot GET /none"},
	})
}

func TestSetCookieHeaderValues(t *testing.T) {
	h := startAgent(t)
	resp := h.do(t, newReq(`module.exports = function (ctx, req, res) {
		res.setHeader('Set-Cookie', ['a=1', 'b=2']); res.setHeader('X-N', 5); res.end(); }`))
	if got := resp.Headers["set-cookie"]; !reflect.DeepEqual(got, []string{"a=1", "b=2"}) {
		t.Fatalf("set-cookie = %v", got)
	}
	if got := resp.Headers["x-n"]; !reflect.DeepEqual(got, []string{"5"}) {
		t.Fatalf("x-n = %v", got)
	}
	if len(resp.Body) != 0 {
		t.Fatalf("body %q", resp.Body)
	}
}

func TestRequireFromModulesDir(t *testing.T) {
	h := startAgent(t)
	pkg := filepath.Join(h.modulesDir, "greeter")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkg, "index.js"), []byte(`module.exports = (n) => 'hi ' + n;`), 0o644); err != nil {
		t.Fatal(err)
	}
	resp := h.do(t, newReq(`var g = require('greeter'); module.exports = function (cb) { cb(null, g('bob')); }`))
	if resp.Status != 200 || string(resp.Body) != `"hi bob"` {
		t.Fatalf("got %d %s", resp.Status, resp.Body)
	}
}

// A SyntaxError answers the reference runtime's shape; where it is goes to
// the webtask's stderr on every call, compiled or from the cache.
func TestSyntaxErrorLocationLogged(t *testing.T) {
	h := startAgent(t)
	for _, id := range []string{"syn-1", "syn-2"} {
		r := newReq("module.exports = function (cb) {\n  cb(null, ;\n};")
		r.ReqID = id
		if resp := h.do(t, r); resp.Status != 400 {
			t.Fatalf("%s: status %d %s", id, resp.Status, resp.Body)
		}
		l := h.waitLog(t, func(l agent.LogLine) bool { return l.ReqID == id })
		if l.Stream != "stderr" || !strings.Contains(l.Msg, "/webtask.js:2") || !strings.Contains(l.Msg, "cb(null, ;") ||
			!strings.Contains(l.Msg, "SyntaxError") || strings.Contains(l.Msg, "agent.js") {
			t.Fatalf("%s: log %+v", id, l)
		}
	}
}
