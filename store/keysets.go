package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/webtaskd/webtaskd/store/keyring"
)

// Key sets and the master token on PostgreSQL: the cluster's key ring
// lives in table key_sets, each key set's JSON wrapped under the
// key-encryption key (kek.go), so that every daemon signs and seals with
// the same keys and a rotation on one reaches the others (ChangeKeys, then
// ReloadKeys). The first daemon to start mints them; concurrent first
// starts agree on one (the table is locked while minting).

// keyBackendTimeout bounds one key ring read or write (the keyring calls
// its backend without a context).
const keyBackendTimeout = 30 * time.Second

// dbKeys is the keyring.Backend of a PostgreSQL store.
type dbKeys struct{ s *Store }

func keySetAD(kid string) string { return "keyset/" + kid }

// lockKeySets serialises the writers of key_sets (of every daemon) until
// tx ends; readers are not blocked.
const lockKeySets = `LOCK TABLE key_sets IN SHARE ROW EXCLUSIVE MODE`

func (k dbKeys) Load(mint func() (*keyring.KeySet, error)) (sets []*keyring.KeySet, current string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), keyBackendTimeout)
	defer cancel()
	if sets, current, err = k.read(ctx, k.s.db); err != nil || len(sets) > 0 {
		return sets, current, err
	}
	err = k.s.inTx(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, lockKeySets); err != nil {
			return err
		}
		// Another daemon may have minted them while we waited.
		if sets, current, err = k.read(ctx, tx); err != nil || len(sets) > 0 {
			return err
		}
		ks, err := mint()
		if err != nil {
			return err
		}
		if err := k.insert(ctx, tx, ks); err != nil {
			return err
		}
		sets, current = []*keyring.KeySet{ks}, ks.ID
		return k.s.notify(ctx, tx, ChangeKeys, ks.ID)
	})
	if err != nil {
		return nil, "", fmt.Errorf("store: key sets: %w", err)
	}
	return sets, current, nil
}

// read returns the stored key sets, unwrapped, and the current kid.
func (k dbKeys) read(ctx context.Context, q querier) ([]*keyring.KeySet, string, error) {
	rows, err := q.QueryContext(ctx, `SELECT kid, wrapped, current FROM key_sets ORDER BY created_at, kid`)
	if err != nil {
		return nil, "", fmt.Errorf("store: key sets: %w", err)
	}
	defer rows.Close()
	var (
		sets    []*keyring.KeySet
		current string
	)
	for rows.Next() {
		var (
			kid, wrapped string
			cur          bool
		)
		if err := rows.Scan(&kid, &wrapped, &cur); err != nil {
			return nil, "", fmt.Errorf("store: key sets: %w", err)
		}
		pt, err := unwrapKEK(k.s.kek, wrapped, keySetAD(kid))
		if err != nil {
			return nil, "", err
		}
		var ks keyring.KeySet
		if json.Unmarshal(pt, &ks) != nil || ks.ID != kid {
			// Never quote pt: it is key material.
			return nil, "", fmt.Errorf("store: key set %s: %w", kid, keyring.ErrCorrupt)
		}
		sets = append(sets, &ks)
		if cur {
			current = kid
		}
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("store: key sets: %w", err)
	}
	return sets, current, nil
}

// insert stores ks, wrapped, as the current key set.
func (k dbKeys) insert(ctx context.Context, tx *txn, ks *keyring.KeySet) error {
	b, err := json.Marshal(ks)
	if err != nil {
		return fmt.Errorf("encode key set: %w", err)
	}
	wrapped, err := wrapKEK(k.s.kek, b, keySetAD(ks.ID))
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE key_sets SET current = false WHERE current`); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO key_sets (kid, wrapped, created_at, current) VALUES (?, ?, ?, true)`,
		ks.ID, wrapped, ks.CreatedAt.UnixNano())
	return err
}

func (k dbKeys) AddCurrent(ks *keyring.KeySet) error {
	ctx, cancel := context.WithTimeout(context.Background(), keyBackendTimeout)
	defer cancel()
	err := k.s.inTx(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, lockKeySets); err != nil {
			return err
		}
		if err := k.insert(ctx, tx, ks); err != nil {
			return err
		}
		return k.s.notify(ctx, tx, ChangeKeys, ks.ID)
	})
	if err != nil {
		return fmt.Errorf("store: add key set: %w", err)
	}
	return nil
}

func (k dbKeys) Retire(kid string) error {
	ctx, cancel := context.WithTimeout(context.Background(), keyBackendTimeout)
	defer cancel()
	err := k.s.inTx(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, lockKeySets); err != nil {
			return err
		}
		var wrapped string
		var cur bool
		if err := tx.QueryRowContext(ctx, `SELECT wrapped, current FROM key_sets WHERE kid = ?`, kid).Scan(&wrapped, &cur); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("kid %q: %w", kid, keyring.ErrUnknownKey)
			}
			return err
		}
		if cur {
			// Another daemon made it current since this one loaded.
			return fmt.Errorf("kid %q: %w", kid, keyring.ErrRetireCurrent)
		}
		pt, err := unwrapKEK(k.s.kek, wrapped, keySetAD(kid))
		if err != nil {
			return err
		}
		var ks keyring.KeySet
		if json.Unmarshal(pt, &ks) != nil {
			return fmt.Errorf("key set %s: %w", kid, keyring.ErrCorrupt)
		}
		ks.Retired = true
		b, err := json.Marshal(&ks)
		if err != nil {
			return err
		}
		if wrapped, err = wrapKEK(k.s.kek, b, keySetAD(kid)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE key_sets SET wrapped = ? WHERE kid = ?`, wrapped, kid); err != nil {
			return err
		}
		return k.s.notify(ctx, tx, ChangeKeys, kid)
	})
	if err != nil {
		return fmt.Errorf("store: retire key set: %w", err)
	}
	return nil
}

// openRing loads the database's key ring (minting it on the first start).
func (s *Store) openRing(ctx context.Context) (*keyring.Ring, error) {
	return keyring.OpenBackend(dbKeys{s})
}

// ReloadKeys re-reads the key sets from the database (after a ChangeKeys
// notification, or when the change feed was down). SQLite: ErrNotShared
// (its ring is files, reloaded by nobody).
func (s *Store) ReloadKeys(ctx context.Context) error {
	if s.pool == nil {
		return ErrNotShared
	}
	return s.ring.Reload()
}

// masterAD is the associated data of the sealed master token.
const masterAD = "master-token"

// MasterToken returns the cluster's master token (PostgreSQL only;
// SQLite: ErrNotShared — the daemon keeps <data-dir>/master.token). The
// stored token is kept when valid(token) says it still verifies; otherwise
// (none stored yet, or revoked, or signed with a retired key set) mint
// makes a new one, which is stored sealed under the key-encryption key and
// announced (ChangeKeys, id "*"). Concurrent callers of every daemon get
// the same token: the row is locked while deciding. A daemon writes what
// it returns to its own <data-dir>/master.token.
func (s *Store) MasterToken(ctx context.Context, valid func(token string) bool, mint func() (string, error)) (string, error) {
	if s.pool == nil {
		return "", ErrNotShared
	}
	var tok string
	err := s.inTx(ctx, func(tx *txn) error {
		var sealed string
		if err := tx.QueryRowContext(ctx, `SELECT sealed FROM cluster_master WHERE id = 1 FOR UPDATE`).Scan(&sealed); err != nil {
			return err
		}
		if sealed != "" {
			pt, err := unwrapKEK(s.kek, sealed, masterAD)
			if err != nil {
				return err
			}
			if tok = string(pt); valid(tok) {
				return nil
			}
		}
		var err error
		if tok, err = mint(); err != nil {
			return err
		}
		if sealed, err = wrapKEK(s.kek, []byte(tok), masterAD); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE cluster_master SET sealed = ? WHERE id = 1`, sealed); err != nil {
			return err
		}
		return s.notify(ctx, tx, ChangeKeys, "*")
	})
	if err != nil {
		return "", fmt.Errorf("store: master token: %w", err)
	}
	return tok, nil
}
