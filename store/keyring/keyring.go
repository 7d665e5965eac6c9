// Package keyring holds the daemon's key sets: each one a JWT signing key and
// a secret-sealing key, identified by a key id (the JWT "kid"). Key sets live
// as files of mode 0600 under <data-dir>/keys.
package keyring

import (
	"errors"
	"time"
)

// ErrUnknownKey: no usable key set has that id (never existed, or retired).
var ErrUnknownKey = errors.New("unknown or retired key id")

// ErrUnseal: a sealed value could not be opened (wrong key, wrong associated
// data or tampered). The message never contains the value.
var ErrUnseal = errors.New("sealed value cannot be opened")

// KeySet is one generation of key material.
type KeySet struct {
	ID         string    `json:"kid"`
	SigningKey []byte    `json:"signing_key"` // 32 bytes, HS256
	SealingKey []byte    `json:"sealing_key"` // 32 bytes, AES-256-GCM
	CreatedAt  time.Time `json:"created_at"`
}

