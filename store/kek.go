package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// The key-encryption key (KEK): 32 bytes from --key-encryption-key-file,
// the same file on every daemon of a cluster. On PostgreSQL it wraps what
// would otherwise be key files in <data-dir> (the key sets, the master
// token) with AES-256-GCM, so a database dump alone opens nothing.

// kekLenBytes is the length of the key-encryption key.
const kekLenBytes = 32

// ErrWrongKEK: a value wrapped under the key-encryption key does not open:
// this daemon's key-encryption key is not the one the cluster's database
// was written with.
var ErrWrongKEK = errors.New("the key-encryption key does not open the key material in the database " +
	"(is --key-encryption-key-file the same file as on the cluster's other daemons?)")

func kekAEAD(kek []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("store: key-encryption key: %w", err)
	}
	return cipher.NewGCM(block)
}

// wrapKEK seals plaintext under kek with associated data ad:
// base64std(ciphertext+tag) "." base64std(nonce).
func wrapKEK(kek, plaintext []byte, ad string) (string, error) {
	aead, err := kekAEAD(kek)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("store: nonce: %w", err)
	}
	ct := aead.Seal(nil, nonce, plaintext, []byte(ad))
	return base64.StdEncoding.EncodeToString(ct) + "." + base64.StdEncoding.EncodeToString(nonce), nil
}

// unwrapKEK opens a value of wrapKEK; any failure is ErrWrongKEK (a
// tampered value cannot be told from a wrong key).
func unwrapKEK(kek []byte, wrapped, ad string) ([]byte, error) {
	aead, err := kekAEAD(kek)
	if err != nil {
		return nil, err
	}
	ctB64, nonceB64, ok := strings.Cut(wrapped, ".")
	ct, err1 := base64.StdEncoding.DecodeString(ctB64)
	nonce, err2 := base64.StdEncoding.DecodeString(nonceB64)
	if !ok || err1 != nil || err2 != nil || len(nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("store: %s: malformed wrapped value: %w", ad, ErrWrongKEK)
	}
	pt, err := aead.Open(nil, nonce, ct, []byte(ad))
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", ad, ErrWrongKEK)
	}
	return pt, nil
}
