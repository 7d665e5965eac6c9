package store

import (
	"context"
	"path/filepath"
	"testing"
)

func TestSnapshot(t *testing.T) {
	e := newEnv(t)
	s := e.open(t)
	defer s.Close()
	ring := e.ring
	ctx := context.Background()
	if _, err := s.PutWebtask(ctx, &Webtask{Container: "c", Name: "n", Code: "x", Secrets: map[string]any{"K": "v"}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "snap.db")
	if err := s.Snapshot(ctx, path); err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshot(ctx, path); err == nil {
		t.Fatal("a snapshot overwrote an existing file")
	}
	c, err := Open(ctx, Options{Path: path, Ring: ring})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := c.GetWebtask(ctx, "c", "n")
	if err != nil || w.Secrets["K"] != "v" {
		t.Fatalf("snapshot's webtask = %+v, %v", w, err)
	}
}
