package keyring

import (
	"fmt"
	"log/slog"
)

// Backend persists a Ring's key sets somewhere else than a directory: the
// PostgreSQL store keeps a cluster's key sets in a table, wrapped under
// the key-encryption key, so every daemon shares them. Rotate and Retire
// call it under the Ring's write lock; it serialises concurrent writers
// of other processes itself.
type Backend interface {
	// Load returns every stored key set and the current kid. When none is
	// stored it persists mint's key set as current and returns it, such
	// that concurrent first Loads (of several processes) agree on one.
	Load(mint func() (*KeySet, error)) (sets []*KeySet, current string, err error)
	// AddCurrent persists the new key set ks and makes it current, in one
	// step.
	AddCurrent(ks *KeySet) error
	// Retire persists that key set kid is retired.
	Retire(kid string) error
}

// OpenBackend loads the key sets of b (minting the first one when there
// is none) into a Ring whose Rotate and Retire write through b.
func OpenBackend(b Backend) (*Ring, error) {
	r := &Ring{backend: b, entries: map[string]*entry{}}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload re-reads the key sets of a Ring opened with OpenBackend (another
// process rotated or retired one). It keeps the Ring unchanged on error.
func (r *Ring) Reload() error {
	if r.backend == nil {
		return fmt.Errorf("keyring: Reload needs a ring opened with OpenBackend")
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	sets, cur, err := r.backend.Load(func() (*KeySet, error) {
		ks, err := NewKeySet()
		if err == nil {
			slog.Info("keyring: minted the first key set", "kid", ks.ID)
		}
		return ks, err
	})
	if err != nil {
		return err
	}
	entries := make(map[string]*entry, len(sets))
	for _, ks := range sets {
		if !kidRE.MatchString(ks.ID) {
			return fmt.Errorf("keyring: stored kid %q: %w", ks.ID, ErrCorrupt)
		}
		e, err := newEntry(ks)
		if err != nil {
			return err
		}
		entries[ks.ID] = e
	}
	if e, ok := entries[cur]; !ok || e.set.Retired {
		return fmt.Errorf("keyring: current names missing or retired kid %q: %w", cur, ErrCorrupt)
	}
	r.mu.Lock()
	r.entries, r.current = entries, cur
	r.mu.Unlock()
	return nil
}

// rotateBackend is Rotate through the backend (writeMu held).
func (r *Ring) rotateBackend() (*KeySet, error) {
	ks, err := NewKeySet()
	if err != nil {
		return nil, err
	}
	e, err := newEntry(ks)
	if err != nil {
		return nil, err
	}
	if err := r.backend.AddCurrent(ks); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.entries[ks.ID] = e
	r.current = ks.ID
	r.mu.Unlock()
	slog.Info("keyring: rotated", "kid", ks.ID)
	return ks, nil
}
