package cluster

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
)

// peerCredentialInfo separates the peer credential from every other key
// derived from the key-encryption key.
const peerCredentialInfo = "webtaskd peer credential v1"

// PeerCredential is the bearer credential the members present to each
// other (peer log streams): HKDF-SHA256 of the key-encryption key, in hex.
// Whoever holds the KEK file can derive it; a database dump cannot.
func PeerCredential(kek []byte) (string, error) {
	k, err := hkdf.Key(sha256.New, kek, nil, peerCredentialInfo, 32)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(k), nil
}

// peerAuth checks requests for the peer credential.
type peerAuth struct{ want []byte }

// Authorized reports, in constant time, whether r carries the peer
// credential as its bearer token.
func (p peerAuth) Authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || len(p.want) == 0 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), p.want) == 1
}
