package store

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestCodeBlobsContentAddressedAndCached(t *testing.T) {
	bothDialects(t, testCodeBlobsContentAddressedAndCached)
}

func testCodeBlobsContentAddressedAndCached(t *testing.T) {
	e := newEnv(t)
	s := e.open(t)
	ctx := context.Background()
	code := "module.exports = cb => cb(null, 1)"
	h, err := s.PutCode(ctx, code)
	if err != nil || h != CodeHash(code) || len(h) != 64 {
		t.Fatalf("PutCode = %q, %v; want %q", h, err, CodeHash(code))
	}
	// Idempotent: one row per content.
	if h2, err := s.PutCode(ctx, code); err != nil || h2 != h {
		t.Fatalf("second PutCode = %q, %v", h2, err)
	}
	var n int
	if err := s.db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM code_blobs").Scan(&n); err != nil || n != 1 {
		t.Fatalf("code_blobs rows = %d, %v; want 1", n, err)
	}
	if _, err := s.GetCode(ctx, CodeHash("other")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetCode of an unknown hash = %v, want ErrNotFound", err)
	}
	// Empty code is valid code (it fails when run, like any code
	// exporting no function).
	if he, err := s.PutCode(ctx, ""); err != nil || he != CodeHash("") {
		t.Fatalf("PutCode of empty code = %q, %v", he, err)
	}
	if got, err := s.GetCode(ctx, CodeHash("")); err != nil || got != "" {
		t.Fatalf("GetCode of empty code = %q, %v", got, err)
	}
	if _, err := s.db.ExecContext(context.Background(), "DELETE FROM code_blobs WHERE hash = ?", CodeHash("")); err != nil {
		t.Fatal(err)
	}
	// Warm reads never touch the disk.
	if _, err := s.db.ExecContext(context.Background(), "DELETE FROM code_blobs"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetCode(ctx, h); err != nil || got != code {
		t.Fatalf("warm GetCode = %q, %v", got, err)
	}
	s.Close()

	// Persisted across reopen; a cold read fills the cache.
	s = e.open(t)
	defer s.Close()
	h3, err := s.PutCode(ctx, code+"\n")
	if err != nil {
		t.Fatal(err)
	}
	s.codes = codeCache{} // cold
	if got, err := s.GetCode(ctx, h3); err != nil || got != code+"\n" {
		t.Fatalf("cold GetCode = %q, %v", got, err)
	}
	if !s.codes.cached(h3) {
		t.Fatal("cold GetCode did not fill the cache")
	}
}

func TestCodeCacheIsByteBounded(t *testing.T) {
	var c codeCache
	big := strings.Repeat("x", codeCacheMaxBytes/4+1)
	for i := 0; i < 8; i++ {
		code := big + string(rune('a'+i))
		c.put(CodeHash(code), code)
		if c.bytes > codeCacheMaxBytes {
			t.Fatalf("cache holds %d bytes, more than %d", c.bytes, codeCacheMaxBytes)
		}
	}
	last := big + "h"
	if !c.cached(CodeHash(last)) {
		t.Fatal("the newest blob was not cached")
	}
	if len(c.m) != 3 {
		t.Fatalf("cache holds %d blobs of a quarter budget each, want 3", len(c.m))
	}
}
