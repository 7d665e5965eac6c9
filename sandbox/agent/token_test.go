package agent_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// fakeIssuer is a TokenHandler: it refuses parents named "leaf" with the
// API's dd:0 answer, else mints "child-of-<parent>".
type fakeIssuer struct {
	mu  sync.Mutex
	ops []agent.TokenOp
}

func (f *fakeIssuer) handle(_ context.Context, op agent.TokenOp) agent.TokenResult {
	f.mu.Lock()
	f.ops = append(f.ops, op)
	f.mu.Unlock()
	if op.Authority == "leaf" {
		return agent.TokenResult{Code: 400, Message: "The authentication webtask token cannot be used to issue new webtask tokens."}
	}
	r := agent.TokenResult{Token: "child-of-" + op.Authority}
	if op.URL {
		r.URL = "http://h/api/run/" + op.Container + "?key=" + r.Token
	}
	return r
}

func (f *fakeIssuer) last(t *testing.T) agent.TokenOp {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.ops) == 0 {
		t.Fatal("token handler not called")
	}
	return f.ops[len(f.ops)-1]
}

const createTokenCode = `module.exports = function (ctx, cb) {
  var fn = ctx.query.url ? ctx.create_token_url : ctx.create_token;
  var opts = ctx.query.opts === 'string' ? 'https://example.com/x.js' : ctx.query.opts === 'none' ? undefined : { ten: 'c', dd: 0, pctx: { a: 1 } };
  var done = function (err, v) {
    console.log('in callback');
    if (err) return cb(null, { code: err.code, message: err.message, isError: err instanceof Error });
    cb(null, { value: v });
  };
  if (opts === undefined) fn(done); else fn(opts, done);
};`

func TestAgentCreateToken(t *testing.T) {
	iss := &fakeIssuer{}
	h := startAgentWith(t, nil, agent.WithTokens(iss.handle, 5*time.Second))
	run := func(query, authority string) map[string]any {
		t.Helper()
		r := newReq(createTokenCode)
		r.URL += "?" + query
		r.Authority = authority
		resp := h.do(t, r)
		if resp.Status != 200 {
			t.Fatalf("%s: %d %s", query, resp.Status, resp.Body)
		}
		return jsonBody(t, resp).(map[string]any)
	}
	if got := run("x=1", "parent"); got["value"] != "child-of-parent" {
		t.Fatalf("create_token = %v", got)
	}
	op := iss.last(t)
	if op.Authority != "parent" || op.Container != "c" || op.Name != "n" || op.URL || string(op.Claims) != `{"ten":"c","dd":0,"pctx":{"a":1}}` {
		t.Fatalf("op %+v claims %s", op, op.Claims)
	}
	if got := run("url=1", "parent"); got["value"] != "http://h/api/run/c?key=child-of-parent" {
		t.Fatalf("create_token_url = %v", got)
	}
	if !iss.last(t).URL {
		t.Fatal("create_token_url did not ask for the url")
	}
	// A string option is a url claim; no options is an empty claims object.
	run("opts=string", "parent")
	if c := string(iss.last(t).Claims); c != `{"url":"https://example.com/x.js"}` {
		t.Fatalf("string option sent as %s", c)
	}
	run("opts=none", "parent")
	if c := string(iss.last(t).Claims); c != `{}` {
		t.Fatalf("no options sent as %s", c)
	}
	// Refusals reach the callback as an Error with code.
	got := run("x=2", "leaf")
	if got["code"] != float64(400) || got["isError"] != true ||
		got["message"] != "The authentication webtask token cannot be used to issue new webtask tokens." {
		t.Fatalf("refusal = %v", got)
	}
	// Output in the callback is attributed to the invocation.
	var attributed bool
	for _, l := range h.snapshotLogs() {
		if l.Msg == "in callback" && l.ReqID == "req-1" && l.ID != 0 {
			attributed = true
		}
	}
	if !attributed {
		t.Fatalf("callback output not attributed: %+v", h.snapshotLogs())
	}
}

func TestAgentCreateTokenBadOptions(t *testing.T) {
	iss := &fakeIssuer{}
	h := startAgentWith(t, nil, agent.WithTokens(iss.handle, 5*time.Second))
	code := `module.exports = function (ctx, cb) {
  var out = {};
  try { ctx.create_token({}); } catch (e) { out.noCb = e instanceof TypeError; }
  var cyclic = {}; cyclic.self = cyclic;
  ctx.create_token(cyclic, function (err) {
    out.cyclic = err && err.code;
    ctx.create_token([1], function (err) { out.array = err && err.code; cb(null, out); });
  });
};`
	resp := h.do(t, newReq(code))
	got := jsonBody(t, resp).(map[string]any)
	if got["noCb"] != true || got["cyclic"] != float64(400) || got["array"] != float64(400) {
		t.Fatalf("%d %s", resp.Status, resp.Body)
	}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	if len(iss.ops) != 0 {
		t.Fatalf("bad options reached the daemon: %+v", iss.ops)
	}
}

// Without a token handler the call fails with 503, not a hang.
func TestAgentCreateTokenWithoutHandler(t *testing.T) {
	h := startAgent(t)
	resp := h.do(t, newReq(createTokenCode))
	if !strings.Contains(string(resp.Body), `"code":503`) {
		t.Fatalf("%d %s", resp.Status, resp.Body)
	}
}
