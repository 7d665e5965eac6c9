package api

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/webtaskd/webtaskd/api/types"
)

// TestReadyz: 200 "ready" while every check passes; a failing check makes
// it a 503 naming the part, without its error text (logged only).
func TestReadyz(t *testing.T) {
	var storeErr error
	e := buildEnv(t, envOptions{deps: func(_ *env, d *Deps) {
		d.ReadyChecks = map[string]ReadyCheck{
			"store":     func(context.Context) error { return storeErr },
			"sandboxes": func(context.Context) error { return nil },
		}
	}})
	w := e.do("GET", "/readyz", "", "")
	r := decode[types.Readiness](t, w)
	if w.Code != 200 || r.Status != "ready" || r.Checks["store"] != "ok" || r.Checks["sandboxes"] != "ok" {
		t.Fatalf("readyz = %d %+v", w.Code, r)
	}
	storeErr = errors.New("disk I/O error at /secret/path")
	w = e.do("GET", "/readyz", "", "")
	r = decode[types.Readiness](t, w)
	if w.Code != 503 || r.Status != "not ready" || r.Checks["store"] != "unavailable" || r.Checks["sandboxes"] != "ok" {
		t.Fatalf("readyz with a failing store = %d %+v", w.Code, r)
	}
	if strings.Contains(w.Body.String(), "/secret/path") {
		t.Fatalf("readyz echoes the internal error: %s", w.Body)
	}
}
