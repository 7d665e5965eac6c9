// Package keyring holds the daemon's key sets: each one a JWT signing key and
// a secret-sealing key, identified by a key id (the JWT "kid"). Key sets live
// as files of mode 0600 under <data-dir>/keys.
//
// On disk, dir/<kid>.json holds one KeySet (JSON) and dir/current holds the
// kid of the key set that signs new tokens and seals new secrets. Every write
// is atomic: temp file in the same directory, fsync, rename, fsync of the
// directory.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
)

// The errors below wrap no errdefs kind on purpose: they are internal (a
// stored value or the key directory is not what it must be), so the API
// answers 500 and logs them.

// ErrUnknownKey: no usable key set has that id (never existed, or retired).
var ErrUnknownKey = errors.New("unknown or retired key id")

// ErrUnseal: a sealed value could not be opened (wrong key, wrong associated
// data or tampered). The message never contains the value.
var ErrUnseal = errors.New("sealed value cannot be opened")

// ErrInsecureKeyFile: a key file (or the current file) is readable or
// writable by someone other than its owner (mode wider than 0600).
var ErrInsecureKeyFile = errors.New("key file mode wider than 0600")

// ErrCorrupt: the key directory holds something that cannot be a valid
// key ring (bad JSON, wrong key length, kid/file-name mismatch, current
// naming a missing or retired key set).
var ErrCorrupt = errors.New("key ring corrupt")

// ErrRetireCurrent: the current key set cannot be retired; rotate first
// (errdefs.ErrConflict).
var ErrRetireCurrent = errdefs.New(errdefs.ErrConflict, "cannot retire the current key set: rotate first")

// KeySet is one generation of key material. A *KeySet handed out by a Ring
// is shared: callers must treat it (and its byte slices) as read-only.
type KeySet struct {
	ID         string    `json:"kid"`
	SigningKey []byte    `json:"signing_key"` // 32 bytes, HS256
	SealingKey []byte    `json:"sealing_key"` // 32 bytes, AES-256-GCM
	CreatedAt  time.Time `json:"created_at"`
	// Retired key sets stay on disk but are no longer usable: Get and
	// Unseal refuse them (tokens signed with them stop verifying).
	Retired bool `json:"retired"`
}

// KeyInfo describes a key set without its key material.
type KeyInfo = types.KeyInfo

const (
	keyLenBytes   = 32
	kidLenBytes   = 8 // 16 hex characters
	nonceLenBytes = 12
	currentFile   = "current"
	fileMode      = 0o600
	dirMode       = 0o700
)

var kidRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// entry is one loaded key set with its ready-to-use AEAD.
type entry struct {
	set  *KeySet
	aead cipher.AEAD
}

// Ring is the set of key sets under one directory. It is safe for
// concurrent use; Current, Get, Seal and Unseal take only a read lock and do
// no disk IO. Mutations (Rotate, Retire) are serialised among themselves and
// do their disk IO before briefly taking the write lock.
type Ring struct {
	dir string
	// backend, when set, persists the key sets instead of dir (OpenBackend).
	backend Backend

	writeMu sync.Mutex // serialises Rotate/Retire (disk + swap)

	mu      sync.RWMutex
	entries map[string]*entry
	current string
}

// Open loads the key sets under dir (created 0700 if missing); when there is
// none it creates the first one. Key files whose mode is wider than 0600 are
// refused with ErrInsecureKeyFile. A caller whose data needs particular key sets checks them with Missing
// first: Open cannot tell a new directory from a lost one.
func Open(dir string) (*Ring, error) {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("keyring: create dir: %w", err)
	}
	r := &Ring{dir: dir, entries: map[string]*entry{}}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("keyring: read dir: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		kid, ok := strings.CutSuffix(name, ".json")
		if !ok || !kidRE.MatchString(kid) || !de.Type().IsRegular() {
			continue // temp files and anything foreign are ignored
		}
		ks, err := readKeySet(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if ks.ID != kid {
			return nil, fmt.Errorf("keyring: %s holds kid %q: %w", name, ks.ID, ErrCorrupt)
		}
		e, err := newEntry(ks)
		if err != nil {
			return nil, err
		}
		r.entries[kid] = e
	}

	cur, err := readSecureFile(filepath.Join(dir, currentFile))
	switch {
	case err == nil:
		kid := strings.TrimSpace(string(cur))
		e, ok := r.entries[kid]
		if !ok || e.set.Retired {
			return nil, fmt.Errorf("keyring: current names missing or retired kid %q: %w", kid, ErrCorrupt)
		}
		r.current = kid
	case errors.Is(err, fs.ErrNotExist):
		// Fresh directory, or a crash between writing the first key set
		// and the current file: use the newest live set, or make one.
		var newest *KeySet
		for _, e := range r.entries {
			if !e.set.Retired && (newest == nil || e.set.CreatedAt.After(newest.CreatedAt)) {
				newest = e.set
			}
		}
		if newest == nil {
			ks, err := r.createKeySet()
			if err != nil {
				return nil, err
			}
			newest = ks
			slog.Info("keyring: created first key set", "kid", ks.ID, "dir", dir)
		} else {
			slog.Warn("keyring: current file missing; using newest live key set", "kid", newest.ID)
		}
		if err := writeFileAtomic(dir, currentFile, []byte(newest.ID+"\n")); err != nil {
			return nil, err
		}
		r.current = newest.ID
	default:
		return nil, err
	}
	return r, nil
}

// Missing returns, sorted and without duplicates, the kids among kids that
// have no key set file under dir (retired ones are present). It reads only:
// a missing dir is missing every kid.
func Missing(dir string, kids []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, kid := range kids {
		if seen[kid] {
			continue
		}
		seen[kid] = true
		if !kidRE.MatchString(kid) {
			out = append(out, kid) // cannot be a file of a key ring
			continue
		}
		_, err := os.Lstat(filepath.Join(dir, kid+".json"))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, kid)
		case err != nil:
			return nil, fmt.Errorf("keyring: %w", err)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Current returns the key set that new tokens and seals use (read-only).
func (r *Ring) Current() *KeySet {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.entries[r.current].set
}

// Get returns the key set kid (read-only); ErrUnknownKey if it is missing or
// retired.
func (r *Ring) Get(kid string) (*KeySet, error) {
	e, err := r.live(kid)
	if err != nil {
		return nil, err
	}
	return e.set, nil
}

func (r *Ring) live(kid string) (*entry, error) {
	r.mu.RLock()
	e, ok := r.entries[kid]
	r.mu.RUnlock()
	if !ok || e.set.Retired {
		return nil, fmt.Errorf("keyring: kid %q: %w", kid, ErrUnknownKey)
	}
	return e, nil
}

// Seal encrypts plaintext with the current sealing key (AES-256-GCM, random
// 12-byte nonce, ad as associated data). sealed is
// base64std(ciphertext+tag) + "." + base64std(nonce); kid names the key set.
func (r *Ring) Seal(plaintext, ad []byte) (sealed, kid string, err error) {
	r.mu.RLock()
	e := r.entries[r.current]
	r.mu.RUnlock()
	nonce := make([]byte, nonceLenBytes)
	if _, err := rand.Read(nonce); err != nil {
		return "", "", fmt.Errorf("keyring: nonce: %w", err)
	}
	ct := e.aead.Seal(nil, nonce, plaintext, ad)
	return base64.StdEncoding.EncodeToString(ct) + "." + base64.StdEncoding.EncodeToString(nonce), e.set.ID, nil
}

// Unseal opens a value produced by Seal with key set kid and the same ad.
// Errors wrap ErrUnknownKey (kid missing or retired) or ErrUnseal.
func (r *Ring) Unseal(sealed, kid string, ad []byte) ([]byte, error) {
	e, err := r.live(kid)
	if err != nil {
		return nil, err
	}
	ctB64, nonceB64, ok := strings.Cut(sealed, ".")
	if !ok {
		return nil, fmt.Errorf("keyring: malformed sealed value: %w", ErrUnseal)
	}
	ct, err1 := base64.StdEncoding.DecodeString(ctB64)
	nonce, err2 := base64.StdEncoding.DecodeString(nonceB64)
	if err1 != nil || err2 != nil || len(nonce) != nonceLenBytes {
		return nil, fmt.Errorf("keyring: malformed sealed value: %w", ErrUnseal)
	}
	pt, err := e.aead.Open(nil, nonce, ct, ad)
	if err != nil {
		return nil, fmt.Errorf("keyring: open with kid %q: %w", kid, ErrUnseal)
	}
	return pt, nil
}

// Rotate creates a new key set and makes it current; older key sets stay
// valid for verifying and unsealing until retired.
func (r *Ring) Rotate() (*KeySet, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	if r.backend != nil {
		return r.rotateBackend()
	}
	ks, err := r.createKeySet()
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(r.dir, currentFile, []byte(ks.ID+"\n")); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.current = ks.ID
	r.mu.Unlock()
	slog.Info("keyring: rotated", "kid", ks.ID)
	return ks, nil
}

// Retire marks key set kid retired (persisted): Get and Unseal of it fail
// from then on. It refuses the current kid (ErrRetireCurrent) and unknown
// kids (ErrUnknownKey); retiring a retired set is a no-op.
func (r *Ring) Retire(kid string) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	var err error
	r.mu.RLock()
	e, ok := r.entries[kid]
	isCurrent := kid == r.current
	r.mu.RUnlock()
	if !ok {
		return fmt.Errorf("keyring: retire %q: %w", kid, ErrUnknownKey)
	}
	if isCurrent {
		return fmt.Errorf("keyring: retire %q: %w", kid, ErrRetireCurrent)
	}
	if e.set.Retired {
		return nil
	}
	// Copy on write: readers may hold the old *KeySet.
	ks := *e.set
	ks.Retired = true
	if r.backend != nil {
		err = r.backend.Retire(kid)
	} else {
		err = writeKeySet(r.dir, &ks)
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.entries[kid] = &entry{set: &ks, aead: e.aead}
	r.mu.Unlock()
	slog.Info("keyring: retired", "kid", kid)
	return nil
}

// List describes every key set (no key bytes), oldest first.
func (r *Ring) List() []KeyInfo {
	r.mu.RLock()
	out := make([]KeyInfo, 0, len(r.entries))
	for kid, e := range r.entries {
		out = append(out, KeyInfo{ID: kid, CreatedAt: e.set.CreatedAt, Current: kid == r.current, Retired: e.set.Retired})
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// createKeySet generates, persists and registers a new key set (not yet
// current). Caller holds writeMu (or is Open, before the Ring is shared).
func (r *Ring) createKeySet() (*KeySet, error) {
	ks, err := NewKeySet()
	if err != nil {
		return nil, err
	}
	r.mu.RLock()
	_, clash := r.entries[ks.ID]
	r.mu.RUnlock()
	if clash {
		return nil, fmt.Errorf("keyring: generated kid %q already exists: %w", ks.ID, ErrCorrupt)
	}
	e, err := newEntry(ks)
	if err != nil {
		return nil, err
	}
	if err := writeKeySet(r.dir, ks); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.entries[ks.ID] = e
	r.mu.Unlock()
	return ks, nil
}

// NewKeySet generates a key set (random kid and keys, created now); it is
// not stored anywhere.
func NewKeySet() (*KeySet, error) {
	ks := &KeySet{CreatedAt: time.Now().UTC(), SigningKey: make([]byte, keyLenBytes), SealingKey: make([]byte, keyLenBytes)}
	id := make([]byte, kidLenBytes)
	for _, b := range [][]byte{id, ks.SigningKey, ks.SealingKey} {
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("keyring: random: %w", err)
		}
	}
	ks.ID = hex.EncodeToString(id)
	return ks, nil
}

func newEntry(ks *KeySet) (*entry, error) {
	if len(ks.SigningKey) != keyLenBytes || len(ks.SealingKey) != keyLenBytes {
		return nil, fmt.Errorf("keyring: kid %q: key length is not %d bytes: %w", ks.ID, keyLenBytes, ErrCorrupt)
	}
	block, err := aes.NewCipher(ks.SealingKey)
	if err != nil {
		return nil, fmt.Errorf("keyring: kid %q: %w", ks.ID, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: kid %q: %w", ks.ID, err)
	}
	return &entry{set: ks, aead: aead}, nil
}

func readKeySet(path string) (*KeySet, error) {
	b, err := readSecureFile(path)
	if err != nil {
		return nil, err
	}
	var ks KeySet
	if err := json.Unmarshal(b, &ks); err != nil {
		// Do not wrap the JSON error: it may quote key bytes.
		return nil, fmt.Errorf("keyring: %s: invalid JSON: %w", filepath.Base(path), ErrCorrupt)
	}
	return &ks, nil
}

// readSecureFile reads path after checking that its mode is at most 0600.
func readSecureFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&^fileMode != 0 {
		return nil, fmt.Errorf("keyring: %s has mode %#o (chmod 600 it): %w", path, perm, ErrInsecureKeyFile)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return b, nil
}

func writeKeySet(dir string, ks *KeySet) error {
	b, err := json.MarshalIndent(ks, "", "  ")
	if err != nil {
		return fmt.Errorf("keyring: encode: %w", err)
	}
	return writeFileAtomic(dir, ks.ID+".json", append(b, '\n'))
}

// writeFileAtomic writes dir/name with mode 0600 via temp file + fsync +
// rename + directory fsync. A full disk wraps errdefs.ErrNoSpace.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	defer func() {
		if errors.Is(err, syscall.ENOSPC) {
			// The caller sees a message without paths (HTTP 507); the log the details.
			slog.Warn("keyring: the data volume is full", "err", err)
			err = errdefs.New(errdefs.ErrNoSpace, "the daemon's storage is full: the key set was not written (retry when space is freed)")
		}
	}()
	f, err := os.CreateTemp(dir, ".tmp-"+name+"-*")
	if err != nil {
		return fmt.Errorf("keyring: write %s: %w", name, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(fileMode); err == nil {
		if _, err = f.Write(data); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("keyring: write %s: %w", name, err)
	}
	if err = os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("keyring: write %s: %w", name, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keyring: sync dir: %w", err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("keyring: sync dir: %w", err)
	}
	return nil
}
