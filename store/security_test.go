package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func TestRevokePersistsAndIsImmediate(t *testing.T) {
	bothDialects(t, testRevokePersistsAndIsImmediate)
}

func testRevokePersistsAndIsImmediate(t *testing.T) {
	e := newEnv(t)
	s := e.open(t)
	ctx := context.Background()
	if r, _ := s.AnyRevoked([]string{"a", "b"}); r {
		t.Fatal("fresh store reports a revocation")
	}
	if err := s.Revoke(ctx, "b", "parent"); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, "b", "again"); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	if r, _ := s.AnyRevoked([]string{"a", "b"}); !r {
		t.Fatal("revocation not visible at once")
	}
	if r, _ := s.AnyRevoked([]string{"a", "c"}); r {
		t.Fatal("unrelated jtis reported revoked")
	}
	if err := s.Revoke(ctx, "", "x"); err == nil {
		t.Fatal("empty jti accepted")
	}
	s.Close()

	s2 := e.open(t)
	defer s2.Close()
	if r, _ := s2.AnyRevoked([]string{"b"}); !r || s2.RevokedCount() != 1 {
		t.Fatalf("after reopen revoked=%v count=%d", r, s2.RevokedCount())
	}
}

func TestResealSecretsThenRetire(t *testing.T) { bothDialects(t, testResealSecretsThenRetire) }

func testResealSecretsThenRetire(t *testing.T) {
	e, s := openTestEnv(t)
	ctx := context.Background()
	oldKid := e.ring.Current().ID
	big := string(bytes.Repeat([]byte("ü"), 32<<10)) // 64 KiB of UTF-8
	w := sample("c", "n")
	w.Secrets = map[string]any{"BIG": big, "UNI": "日本語 ✓"}
	if _, err := s.PutWebtask(ctx, w); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutWebtask(ctx, sample("c", "other")); err != nil {
		t.Fatal(err)
	}
	before, _ := s.GetWebtask(ctx, "c", "n")
	if _, err := e.ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	newKid := e.ring.Current().ID
	n, err := s.ResealSecrets(ctx, oldKid)
	if err != nil || n != 2 {
		t.Fatalf("reseal = %d, %v; want 2", n, err)
	}
	if left, err := s.CountSealedWith(ctx, oldKid); err != nil || left != 0 {
		t.Fatalf("left under old kid = %d, %v", left, err)
	}
	if k, _ := s.CountSealedWith(ctx, newKid); k != 2 {
		t.Fatalf("sealed under new kid = %d", k)
	}
	if err := e.ring.Retire(oldKid); err != nil {
		t.Fatal(err)
	}
	s.invalidate("c", "n")
	got, err := s.GetWebtask(ctx, "c", "n")
	if err != nil {
		t.Fatalf("after retire: %v", err)
	}
	if got.Secrets["BIG"] != big || got.Secrets["UNI"] != "日本語 ✓" || !got.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatalf("secrets or updated_at changed by reseal")
	}
	// Nothing sealed with the new kid is touched by a second pass.
	if n, err := s.ResealSecrets(ctx, oldKid); err != nil || n != 0 {
		t.Fatalf("second reseal = %d, %v", n, err)
	}
	// The plain value is not in any database file.
	assertNotStored(t, e, "after reseal", "日本語", "cb(null, 'hi')")
}

func TestReplaceTokenCompareAndSwap(t *testing.T) { bothDialects(t, testReplaceTokenCompareAndSwap) }

func testReplaceTokenCompareAndSwap(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if _, err := s.PutWebtask(ctx, sample("c", "n")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetWebtask(ctx, "c", "n"); err != nil { // warm the cache
		t.Fatal(err)
	}
	if err := s.ReplaceToken(ctx, "c", "n", "tok.n", "tok.new"); err != nil {
		t.Fatal(err)
	}
	w, _ := s.GetWebtask(ctx, "c", "n")
	if w.Token != "tok.new" || w.Secrets["API_KEY"] != "k-n" {
		t.Fatalf("after replace: token %q secrets %v", w.Token, w.Secrets)
	}
	if err := s.ReplaceToken(ctx, "c", "n", "tok.n", "tok.x"); !errors.Is(err, ErrTokenChanged) {
		t.Fatalf("stale replace: %v", err)
	}
	if err := s.ReplaceToken(ctx, "c", "gone", "a", "b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	toks, err := s.WebtaskTokens(ctx)
	if err != nil || len(toks) != 1 || toks[0].Token != "tok.new" {
		t.Fatalf("tokens = %+v, %v", toks, err)
	}
}
