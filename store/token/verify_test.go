package token

import (
	"errors"
	"testing"
)

// A key set retired after a token's signature was checked (and its claims
// cached) makes Check refuse the cached claims.
func TestCheckRefusesRetiredKeyOfCachedClaims(t *testing.T) {
	keys := fakeKeys{"k1": testKeySet("k1", 1)}
	raw, err := Sign(keys["k1"], &Claims{Ten: "a", Exp: now.Unix() + 10})
	if err != nil {
		t.Fatal(err)
	}
	c, err := VerifySignature(keys, raw)
	if err != nil || c.Kid != "k1" {
		t.Fatalf("VerifySignature = %+v, %v", c, err)
	}
	v := Verifier{Keys: keys}
	if err := v.Check(c, now); err != nil {
		t.Fatal(err)
	}
	if err := v.Check(c, now.Add(20e9)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	// VerifySignature ignores exp: an expired token can still be revoked.
	if _, err := VerifySignature(keys, raw); err != nil {
		t.Fatal(err)
	}
	delete(keys, "k1")
	if err := v.Check(c, now); !errors.Is(err, ErrUntrustedKey) {
		t.Fatalf("retired key: %v", err)
	}
	if _, err := VerifySignature(keys, raw); !errors.Is(err, ErrUntrustedKey) {
		t.Fatalf("retired key signature: %v", err)
	}
}
