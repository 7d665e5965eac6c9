package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCollectCodeBlobs: an orphaned blob past the cutoff is removed (from
// the database and the cache); a blob a stored webtask names and a blob
// younger than the cutoff are kept.
func TestCollectCodeBlobs(t *testing.T) { bothDialects(t, testCollectCodeBlobs) }

func testCollectCodeBlobs(t *testing.T) {
	e := newEnv(t)
	s := e.open(t)
	defer s.Close()
	ctx := context.Background()
	orphan, err := s.PutCode(ctx, "module.exports = cb => cb(null, 'orphan')")
	if err != nil {
		t.Fatal(err)
	}
	named, err := s.PutCode(ctx, "module.exports = cb => cb(null, 'named')")
	if err != nil {
		t.Fatal(err)
	}
	w := sample("c", "n")
	w.Code, w.CodeURL = "", "webtask:///code/"+named
	if _, err := s.PutWebtask(ctx, w); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(48 * time.Hour)
	young, err := s.PutCode(ctx, "module.exports = cb => cb(null, 'young')")
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.CollectCodeBlobs(ctx, e.clock.Now().Add(-24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("collected %d, %v; want 1", n, err)
	}
	if s.codes.cached(orphan) {
		t.Error("the collected blob is still cached")
	}
	if _, err := s.GetCode(ctx, orphan); !errors.Is(err, ErrNotFound) {
		t.Errorf("orphan after GC: %v", err)
	}
	for _, h := range []string{named, young} {
		if _, err := s.GetCode(ctx, h); err != nil {
			t.Errorf("kept blob %s: %v", h, err)
		}
	}
	// Collected code issued again is stored again.
	if h, err := s.PutCode(ctx, "module.exports = cb => cb(null, 'orphan')"); err != nil || h != orphan {
		t.Fatal(h, err)
	}
	if _, err := s.GetCode(ctx, orphan); err != nil {
		t.Errorf("re-stored blob: %v", err)
	}
}
