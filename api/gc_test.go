package api

import (
	"context"
	"testing"

	"github.com/webtaskd/webtaskd/api/types"
)

// TestGCRoute: master only; a bad age is a 400 that collects nothing; an
// orphaned blob older than the age is collected.
func TestGCRoute(t *testing.T) {
	e := buildEnv(t, envOptions{deps: func(e *env, d *Deps) { d.Collector = e.st }})
	if _, err := e.st.PutCode(context.Background(), "module.exports = cb => cb()"); err != nil {
		t.Fatal(err)
	}
	wantError(t, e.do("POST", "/api/admin/gc", e.tenant, `{}`), 403, "")
	wantError(t, e.do("POST", "/api/admin/gc", e.master, `{"older_than":"soon"}`), 400, "")
	w := e.do("POST", "/api/admin/gc", e.master, `{"older_than":"1h"}`)
	if r := decode[types.GCResult](t, w); w.Code != 200 || r.CodeBlobsRemoved != 0 {
		t.Fatalf("gc 1h = %d %+v, want nothing collected", w.Code, r)
	}
	e.now = e.now.Add(2 * 3600e9)
	w = e.do("POST", "/api/admin/gc", e.master, `{"older_than":"1h"}`)
	if r := decode[types.GCResult](t, w); w.Code != 200 || r.CodeBlobsRemoved != 1 {
		t.Fatalf("gc 1h two hours later = %d %+v, want 1 collected", w.Code, r)
	}
}
