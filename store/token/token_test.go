package token

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/store/keyring"
)

type fakeKeys map[string]*keyring.KeySet

func (f fakeKeys) Get(kid string) (*keyring.KeySet, error) {
	if ks, ok := f[kid]; ok {
		return ks, nil
	}
	return nil, fmt.Errorf("kid %q: %w", kid, keyring.ErrUnknownKey)
}

func testKeySet(id string, fill byte) *keyring.KeySet {
	k := make([]byte, 32)
	for i := range k {
		k[i] = fill
	}
	return &keyring.KeySet{ID: id, SigningKey: k, SealingKey: k}
}

var now = time.Unix(1_700_000_000, 0)

func TestSignHeaderHasNoTyp(t *testing.T) {
	ks := testKeySet("k1", 1)
	c := &Claims{Ten: "test", Dd: ptr(0)}
	raw, err := Sign(ks, c)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	if string(hdr) != `{"alg":"HS256","kid":"k1"}` {
		t.Fatalf("header = %s", hdr)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	if len(c.Jti) != 32 || m["jti"] != c.Jti {
		t.Fatalf("jti = %q / %v", c.Jti, m["jti"])
	}
	if m["iat"] == nil || m["dd"] != float64(0) {
		t.Fatalf("payload = %s", payload)
	}
	if ca, ok := m["ca"].([]any); !ok || len(ca) != 0 {
		t.Fatalf("ca = %v", m["ca"])
	}
}

// An explicit pb 0 (never parse) must survive the token, apart from an
// absent pb (parse on arity).
func TestSignKeepsExplicitPbZero(t *testing.T) {
	for _, tc := range []struct {
		pb   *int
		want int
	}{{nil, PbOnArity}, {ptr(0), PbNever}, {ptr(1), PbAlways}, {ptr(2), PbOnArity}} {
		raw, err := Sign(testKeySet("k1", 1), &Claims{Ten: "t", Pb: tc.pb})
		if err != nil {
			t.Fatal(err)
		}
		c, _, err := ParseUnverified(raw)
		if err != nil {
			t.Fatal(err)
		}
		if (c.Pb == nil) != (tc.pb == nil) || ParseBody(c.Pb) != tc.want {
			t.Fatalf("pb %v: decoded %v (mode %d)", tc.pb, c.Pb, ParseBody(c.Pb))
		}
	}
}

func TestSignNeverSerializesPlainSecrets(t *testing.T) {
	raw, err := Sign(testKeySet("k1", 1), &Claims{Ten: "t", Secrets: map[string]any{"PASSWORD": "hunter2"}})
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if strings.Contains(string(payload), "hunter2") {
		t.Fatalf("plain secret in token payload: %s", payload)
	}
}

func TestVerifyRoundTripAndOrder(t *testing.T) {
	k1, k2 := testKeySet("k1", 1), testKeySet("k2", 2)
	keys := fakeKeys{"k1": k1, "k2": k2}
	sign := func(ks *keyring.KeySet, c *Claims) string {
		t.Helper()
		raw, err := Sign(ks, c)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	good := sign(k1, &Claims{Ten: "a,b", Pctx: map[string]any{"x": "y"}, Meta: map[string]string{"m": "1"}})
	c, err := Verify(keys, good, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Ten != "a,b" || c.Kid != "k1" || c.Pctx["x"] != "y" || c.Meta["m"] != "1" {
		t.Fatalf("claims = %+v", c)
	}

	// Forged: signed with k2's key but header says k1.
	forged := sign(&keyring.KeySet{ID: "k1", SigningKey: k2.SigningKey}, &Claims{Ten: "a"})
	unknown := sign(testKeySet("zz", 3), &Claims{Ten: "a"})
	// Unknown kid wins over an expired claim (kid is checked first).
	unknownExpired := sign(testKeySet("zz", 3), &Claims{Ten: "a", Exp: now.Unix() - 10})
	// A bad signature wins over expiry.
	forgedExpired := sign(&keyring.KeySet{ID: "k1", SigningKey: k2.SigningKey}, &Claims{Exp: now.Unix() - 10})
	notYet := sign(k1, &Claims{Nbf: now.Unix() + 10, Exp: now.Unix() - 10}) // nbf checked before exp
	expired := sign(k1, &Claims{Exp: now.Unix()})
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"jti":"x","iat":1,"ca":[]}`)) + "." + parts[2]
	noneAlg := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"k1"}`)) + "." + parts[1] + "."

	for _, tc := range []struct {
		name, raw string
		want      error
		msg       string
	}{
		{"malformed", "not-a-jwt", ErrMalformed, "malformed JWT token"},
		{"wrong kid", unknown, ErrUntrustedKey, "JWT token signed with an untrusted key"},
		{"wrong kid expired", unknownExpired, ErrUntrustedKey, "JWT token signed with an untrusted key"},
		{"bad signature", forged, ErrBadSignature, "invalid JWT token signature"},
		{"bad signature expired", forgedExpired, ErrBadSignature, "invalid JWT token signature"},
		{"tampered payload", tampered, ErrBadSignature, "invalid JWT token signature"},
		{"alg none", noneAlg, ErrBadSignature, "invalid JWT token signature"},
		{"not yet valid", notYet, ErrNotYetValid, "not yet valid JWT token"},
		{"expired", expired, ErrExpired, "expired JWT token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(keys, tc.raw, now)
			if !errors.Is(err, tc.want) || err.Error() != tc.msg {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyRevocation(t *testing.T) {
	k1 := testKeySet("k1", 1)
	raw, err := Sign(k1, &Claims{Ten: "a", Ca: []string{"parentjti"}})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	v := Verifier{Keys: fakeKeys{"k1": k1}, Revoked: func(jtis []string) (bool, error) {
		seen = jtis
		for _, j := range jtis {
			if j == "parentjti" {
				return true, nil
			}
		}
		return false, nil
	}}
	if _, err := v.Verify(raw, now); !errors.Is(err, ErrRevoked) || err.Error() != "token is revoked" {
		t.Fatalf("err = %v", err)
	}
	if len(seen) != 2 || seen[0] != "parentjti" || len(seen[1]) != 32 {
		t.Fatalf("revocation check saw %v", seen)
	}
	v.Revoked = func([]string) (bool, error) { return false, errors.New("db down") }
	if _, err := v.Verify(raw, now); err == nil || errors.Is(err, ErrRevoked) {
		t.Fatalf("err = %v", err)
	}
}

func TestAllowsContainer(t *testing.T) {
	for _, tc := range []struct {
		ten, name string
		want      bool
	}{
		{"", "anything", true},
		{"a", "a", true},
		{"a", "b", false},
		{"a,b,c", "b", true},
		{"a, b", "b", true},
		{"a,b", "ab", false},
		{"/^foo.*$/", "foobar", true},
		{"/foo.*/", "foobar", true},
		{"/foo/", "foobar", false}, // anchored: full match only
		{"/foo/", "xfoo", false},
		{"/a|b/", "a", true},
		{"/a|b/", "ab", false},
		{"/[/", "x", false}, // bad regex allows nothing
	} {
		c := &Claims{Ten: tc.ten}
		if got := c.AllowsContainer(tc.name); got != tc.want {
			t.Errorf("ten %q name %q: got %v", tc.ten, tc.name, got)
		}
	}
}

func TestValidName(t *testing.T) {
	good := []string{"a", "A-b_c.d~e!f$g+h=i:j@k", strings.Repeat("x", 128), "..."}
	bad := []string{"", ".", "..", "../x", "a/b", "a b", "a%2F", strings.Repeat("x", 129), "é", "a\x00"}
	for _, s := range good {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	for _, s := range bad {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
	}
}

func ptr(n int) *int { return &n }
