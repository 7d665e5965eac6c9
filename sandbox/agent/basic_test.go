package agent_test

import (
	"testing"
)

func TestHelloWorld(t *testing.T) {
	h := startAgent(t)
	resp := h.do(t, newReq(`module.exports = function (ctx, cb) { cb(null, {hello: ctx.query.name}); }`))
	if resp.Status != 200 || string(resp.Body) != `{"hello":"x"}` && string(resp.Body) != `{}` {
		t.Fatalf("got %d %s", resp.Status, resp.Body)
	}
	r := newReq(`module.exports = function (ctx, cb) { cb(null, {hello: ctx.query.name}); }`)
	r.URL = "/api/run/c/n?name=x"
	resp = h.do(t, r)
	if resp.Status != 200 || string(resp.Body) != `{"hello":"x"}` {
		t.Fatalf("got %d %s", resp.Status, resp.Body)
	}
	if ct := resp.Headers["content-type"]; len(ct) != 1 || ct[0] != "application/json" {
		t.Fatalf("headers %v", resp.Headers)
	}
}
