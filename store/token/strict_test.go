package token

import (
	"errors"
	"strings"
	"testing"
)

const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// flipPaddingBits changes the two unused low bits of the last character of
// a 32-byte base64url segment (43 characters carry 258 bits): the decoded
// bytes stay the same, only a lenient decoder accepts the spelling.
func flipPaddingBits(seg string) string {
	last := strings.IndexByte(b64url, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(b64url[last^1])
}

func TestVerifyRefusesNonCanonicalSignature(t *testing.T) {
	k1 := testKeySet("k1", 1)
	keys := fakeKeys{"k1": k1}
	raw, err := Sign(k1, &Claims{Ten: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(keys, raw, now); err != nil {
		t.Fatalf("canonical token refused: %v", err)
	}
	parts := strings.Split(raw, ".")
	if len(parts[2]) != 43 {
		t.Fatalf("signature segment has %d characters, want 43", len(parts[2]))
	}
	alt := parts[0] + "." + parts[1] + "." + flipPaddingBits(parts[2])
	if alt == raw {
		t.Fatal("flipping the padding bits changed nothing")
	}
	_, err = Verify(keys, alt, now)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("token with non-zero padding bits: err = %v, want %v", err, ErrMalformed)
	}
	if _, err := VerifySignature(keys, alt); err == nil {
		t.Fatal("VerifySignature accepted the second spelling")
	}
	// Go's base64 decoders skip CR and LF even when strict.
	for _, nl := range []string{"\n", "\r", "\r\n"} {
		sig := parts[2][:10] + nl + parts[2][10:]
		if _, err := Verify(keys, parts[0]+"."+parts[1]+"."+sig, now); !errors.Is(err, ErrMalformed) {
			t.Fatalf("token with %q in its signature: err = %v, want %v", nl, err, ErrMalformed)
		}
	}
}
