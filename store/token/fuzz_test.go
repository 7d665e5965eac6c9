package token

import (
	"strings"
	"testing"
)

// Fuzz targets (make fuzz runs each for a few seconds; seeds are in
// testdata/fuzz). They check invariants, not only the absence of panics.

// FuzzIssueRequest parses a POST /api/tokens/issue body and narrows it
// under a tenant token: whatever the body, the child never reaches a
// container its parent cannot, never delegates deeper, and signs and
// verifies back to the same container scope.
func FuzzIssueRequest(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"ten":"a"}`, `{"ten":"a,b","dd":1}`, `{"ten":"/^a[0-9]+$/"}`, `{"ten":"/.*/"}`,
		`{"jtn":"x","code":"module.exports = cb => cb()","ten":"a"}`, `{"url":"webtask://a/x","jtn":"x"}`,
		`{"dd":"10","exp":"1700000100","nbf":1.0}`, `{"lts":1,"ltm":2,"ls":5}`, `{"meta":{"k":"v"},"pctx":{"x":[1,2]}}`,
		`{"ectx":{"S":"v"}}`, `{"jti":"00000000000000000000000000000000"}`, `{"ten":"a","ten":"b"}`, `[]`, `null`, `{"dd":1e400}`,
	} {
		f.Add([]byte(s))
	}
	parent := &Claims{Ten: "a,b", Dd: ptr(2), Jti: strings.Repeat("1", 32)}
	ks := testKeySet("k1", 1)
	keys := fakeKeys{"k1": ks}
	probes := []string{"a", "b", "c", "a1", "ab", "b,a", "", ".", "A"}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseIssueRequest(body)
		if err != nil {
			var ce *ClaimError
			if !asClaimError(err, &ce) {
				t.Fatalf("parse error %T is not a *ClaimError: %v", err, err)
			}
			return
		}
		child, err := Narrow(parent, req, now)
		if err != nil {
			return
		}
		if child.IsMaster() {
			t.Fatalf("a tenant token issued a master token: %+v", child)
		}
		if child.Dd == nil || *child.Dd >= *parent.Dd {
			t.Fatalf("child dd %v not below the parent's %d", child.Dd, *parent.Dd)
		}
		for _, n := range probes {
			if child.AllowsContainer(n) && !parent.AllowsContainer(n) {
				t.Fatalf("child ten %q allows %q, the parent's %q does not", child.Ten, n, parent.Ten)
			}
		}
		if child.Secrets != nil {
			return // sealed by the caller before signing
		}
		raw, err := Sign(ks, child)
		if err != nil {
			t.Fatalf("sign: %v", err)
		}
		back, err := Verify(keys, raw, now)
		if err != nil {
			if child.Nbf != 0 || child.Exp != 0 {
				return // time claims may refuse it at now
			}
			t.Fatalf("verify a freshly signed child: %v", err)
		}
		if back.Ten != child.Ten || back.Jtn != child.Jtn {
			t.Fatalf("round trip changed the scope: %q/%q -> %q/%q", child.Ten, child.Jtn, back.Ten, back.Jtn)
		}
	})
}

func asClaimError(err error, ce **ClaimError) bool {
	e, ok := err.(*ClaimError)
	*ce = e
	return ok
}

// FuzzVerify feeds arbitrary strings to the verifier: no panic, only the
// documented errors, and a token that verifies has one spelling (no other
// string that verifies decodes to the same claims with a different text).
func FuzzVerify(f *testing.F) {
	ks := testKeySet("k1", 1)
	keys := fakeKeys{"k1": ks}
	good, err := Sign(ks, &Claims{Ten: "a", Jti: strings.Repeat("a", 32), Iat: 1})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{good, good + "=", good[:len(good)-1], "a.b.c", "..", "", "eyJhbGciOiJub25lIn0.e30.",
		strings.Replace(good, ".", "=.", 1), flipPaddingBits(good), good[:len(good)-4] + "\n" + good[len(good)-4:]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := Verify(keys, raw, now)
		if err != nil {
			for _, known := range []error{ErrMalformed, ErrUntrustedKey, ErrBadSignature, ErrNotYetValid, ErrExpired} {
				if err == known {
					return
				}
			}
			t.Fatalf("unexpected error %v", err)
		}
		if c.Kid != "k1" {
			t.Fatalf("verified with kid %q", c.Kid)
		}
		// The only token of this fuzz's key that verifies is one we signed:
		// a verified string is byte for byte a signed one.
		if raw != good {
			t.Fatalf("a second spelling verified: %q (signed: %q)", raw, good)
		}
	})
}

// FuzzValidName checks the container/webtask name rule: a valid name is
// 1..128 characters of the allowed set, never a path step, and is a
// single path segment as it stands.
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"a", "demo", "a.b", ".", "..", "a/b", "a%2Fb", "é", strings.Repeat("x", 128), strings.Repeat("x", 129), "~!$+=:@-_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidName(s) {
			return
		}
		if len(s) == 0 || len(s) > 128 || s == "." || s == ".." || strings.ContainsAny(s, "/\\%?#\x00 ") {
			t.Fatalf("ValidName accepted %q", s)
		}
		for _, r := range s {
			if r > 0x7e {
				t.Fatalf("ValidName accepted non-ASCII %q", s)
			}
		}
	})
}
