package api

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/keyring"
	"github.com/webtaskd/webtaskd/store/modules"
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

// TestGCModules: POST /api/admin/gc removes (files and record) a module
// version no stored webtask declares once its record is older than the
// age, and keeps a declared one and a young one; the store, the modules and
// the API share one injected clock.
func TestGCModules(t *testing.T) {
	ctx := context.Background()
	ring, err := keyring.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var e *env
	clock := func() time.Time { return e.now }
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "wt.db"), Ring: ring, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mods, err := modules.Open(ctx, modules.Config{Dir: filepath.Join(t.TempDir(), "modules"), NPM: "/nonexistent/npm",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mods.Close() })
	e = buildEnv(t, envOptions{deps: func(e *env, d *Deps) { d.Collector, d.ModuleCollector = st, mods }})

	used := types.ModuleSpec{Name: "wtd-used", Version: "1.0.0"}
	unused := types.ModuleSpec{Name: "wtd-used", Version: "2.0.0"} // same name, other version
	young := types.ModuleSpec{Name: "wtd-young", Version: "1.0.0"}
	install := func(sp types.ModuleSpec) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(mods.Path(sp), sp.Name), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutModule(ctx, types.Module{Name: sp.Name, Version: sp.Version, State: types.ModuleAvailable}); err != nil {
			t.Fatal(err)
		}
	}
	install(used)
	install(unused)
	if _, err := st.PutWebtask(ctx, &store.Webtask{Container: "test", Name: "w", Code: "module.exports = cb => cb()",
		Meta: map[string]string{MetaDependencies: `{"wtd-used":"1.0.0","@webtask/middleware-compiler":"1.0.0"}`}}); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(2 * time.Hour)
	install(young)

	w := e.do("POST", "/api/admin/gc", e.master, `{"older_than":"1h"}`)
	if r := decode[types.GCResult](t, w); w.Code != 200 || r.ModulesRemoved != 1 {
		t.Fatalf("gc 1h = %d %+v, want 1 module collected", w.Code, r)
	}
	for _, c := range []struct {
		sp   types.ModuleSpec
		kept bool
	}{{used, true}, {unused, false}, {young, true}} {
		_, statErr := os.Stat(mods.Path(c.sp))
		_, getErr := st.GetModule(ctx, c.sp.Name, c.sp.Version)
		if c.kept && (statErr != nil || getErr != nil) {
			t.Errorf("%s: files %v, record %v; want both kept", c.sp, statErr, getErr)
		}
		if !c.kept && (!errors.Is(statErr, fs.ErrNotExist) || !errors.Is(getErr, errdefs.ErrNotFound)) {
			t.Errorf("%s: files %v, record %v; want both removed", c.sp, statErr, getErr)
		}
	}
}
