package modules

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
)

// TestCollectSkipsInstalling: Collect leaves a module alone while an
// install of it is in flight, and removes it (files and record) once none
// is; a module inUse names and a record newer than the cutoff stay. No npm
// runs: records and trees are made directly, the clock is injected.
func TestCollectSkipsInstalling(t *testing.T) {
	ctx := context.Background()
	ring, err := keyring.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(t.TempDir(), "wt.db"), Ring: ring, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := Open(ctx, Config{Dir: filepath.Join(t.TempDir(), "modules"), NPM: "/nonexistent/npm",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	old, kept, young := spec(tiny1), spec(tiny2), spec(dep1)
	for _, sp := range []types.ModuleSpec{old, kept, young} {
		if sp == young {
			now = now.Add(time.Hour)
		}
		if err := os.MkdirAll(filepath.Join(m.Path(sp), sp.Name), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := m.put(ctx, types.Module{Name: sp.Name, Version: sp.Version, State: types.ModuleAvailable}); err != nil {
			t.Fatal(err)
		}
	}
	inUse := func(sp types.ModuleSpec) bool { return sp == kept }
	cutoff := now.Add(-time.Minute)

	m.mu.Lock()
	m.inflight[Key(old)] = make(chan struct{})
	m.mu.Unlock()
	if n, err := m.Collect(ctx, cutoff, inUse); err != nil || n != 0 {
		t.Fatalf("Collect while %s installs = %d, %v; want 0", old, n, err)
	}
	m.mu.Lock()
	delete(m.inflight, Key(old))
	m.mu.Unlock()
	if n, err := m.Collect(ctx, cutoff, inUse); err != nil || n != 1 {
		t.Fatalf("Collect = %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(filepath.Join(m.Dir(), Key(old))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s files after Collect: %v", old, err)
	}
	if _, err := st.GetModule(ctx, old.Name, old.Version); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("%s record after Collect: %v", old, err)
	}
	if m.State(old) != "" {
		t.Errorf("%s State after Collect = %q", old, m.State(old))
	}
	for _, sp := range []types.ModuleSpec{kept, young} {
		if _, err := os.Stat(m.Path(sp)); err != nil {
			t.Errorf("%s files: %v", sp, err)
		}
		if m.State(sp) != types.ModuleAvailable {
			t.Errorf("%s State = %q, want available", sp, m.State(sp))
		}
	}
}
