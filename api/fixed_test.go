package api

import (
	"reflect"
	"testing"

	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// TestFixedFollowsTheStoredVersion: a named run carries the pre-encoded
// per-webtask part of the version it runs, reused while the webtask is
// unchanged and rebuilt after an update.
func TestFixedFollowsTheStoredVersion(t *testing.T) {
	e := buildEnv(t, envOptions{realStore: true})
	put := func(secret string) {
		t.Helper()
		body := `{"code":"module.exports = cb => cb(null, 1)","secrets":{"S":"` + secret + `"},"meta":{"m":"v"}}`
		if w := e.do("PUT", "/api/webtask/test/fx", e.tenant, body); w.Code != 200 {
			t.Fatalf("put: %d %s", w.Code, w.Body)
		}
	}
	run := func() *agent.Request {
		t.Helper()
		if w := e.do("GET", "/api/run/test/fx", "", ""); w.Code != 200 {
			t.Fatalf("run: %d %s", w.Code, w.Body)
		}
		return e.runner.last(t)
	}
	check := func(r *agent.Request, secret string) {
		t.Helper()
		if r.Fixed == nil || r.Secrets["S"] != secret {
			t.Fatalf("request %+v, want Fixed and secret %q", r, secret)
		}
		cp := *r
		cp.Fixed = nil
		want, err := agent.EncodeFixed(&cp)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r.Fixed, want) {
			t.Fatalf("Fixed does not encode the request's own fields (secret %q)", secret)
		}
	}
	put("one")
	r1 := run()
	check(r1, "one")
	if r2 := run(); r2.Fixed != r1.Fixed {
		t.Error("Fixed rebuilt for an unchanged webtask")
	}
	put("two")
	r3 := run()
	check(r3, "two")
	if reflect.DeepEqual(r3.Fixed, r1.Fixed) {
		t.Error("Fixed of the old version used after an update")
	}
}
