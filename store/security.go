package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// Revocations and key-retirement support. Revoked token ids live in the
// revoked_tokens table and, for the hot path, in an in-memory set loaded at
// Open and updated by Revoke after its commit: a check is a map lookup, and
// a revocation is visible to the next request.

// loadRevoked fills the in-memory revocation set from the database.
func (s *Store) loadRevoked(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT jti FROM revoked_tokens`)
	if err != nil {
		return fmt.Errorf("store: load revocations: %w", err)
	}
	defer rows.Close()
	set := map[string]struct{}{}
	for rows.Next() {
		var jti string
		if err := rows.Scan(&jti); err != nil {
			return fmt.Errorf("store: load revocations: %w", err)
		}
		set[jti] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: load revocations: %w", err)
	}
	s.revMu.Lock()
	s.revoked = set
	s.revMu.Unlock()
	return nil
}

// Revoke records jti as revoked (permanently; revoking twice is a no-op).
// by is the jti of the token that asked for it, for the audit trail. When
// Revoke returns nil the revocation is durable and already enforced.
func (s *Store) Revoke(ctx context.Context, jti, by string) (err error) {
	defer s.writeDone(&err)
	if jti == "" {
		return fmt.Errorf("store: revoke: empty jti")
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if _, err := s.execNotify(ctx, ChangeRevocation, jti,
		`INSERT INTO revoked_tokens (jti, revoked_by, revoked_at) VALUES (?, ?, ?) ON CONFLICT (jti) DO NOTHING`,
		jti, by, s.now().UTC().UnixNano()); err != nil {
		return fmt.Errorf("store: revoke: %w", err)
	}
	s.revMu.Lock()
	s.revoked[jti] = struct{}{}
	s.revMu.Unlock()
	return nil
}

// AnyRevoked reports whether any of jtis is revoked (token.RevokedFunc).
// It never touches the disk, unless CheckRevocationsInDB is on.
func (s *Store) AnyRevoked(jtis []string) (bool, error) {
	if s.revokedFromDB.Load() {
		return s.anyRevokedInDB(jtis)
	}
	s.revMu.RLock()
	defer s.revMu.RUnlock()
	for _, j := range jtis {
		if _, ok := s.revoked[j]; ok {
			return true, nil
		}
	}
	return false, nil
}

// RevokedCount is the number of revoked token ids.
func (s *Store) RevokedCount() int {
	s.revMu.RLock()
	defer s.revMu.RUnlock()
	return len(s.revoked)
}

// ResealSecrets re-seals, under the key ring's current sealing key, the
// secrets of every webtask sealed with key set kid, in one transaction. It
// returns how many webtasks were re-sealed. Nothing else in the rows
// changes (updated_at included).
func (s *Store) ResealSecrets(ctx context.Context, kid string) (_ int, err error) {
	defer s.writeDone(&err)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: reseal: %w", err)
	}
	defer tx.Rollback()
	type row struct{ container, name, sealed string }
	rows, err := tx.QueryContext(ctx, `SELECT container, name, secrets_sealed FROM webtasks WHERE secrets_kid = ?`, kid)
	if err != nil {
		return 0, fmt.Errorf("store: reseal: %w", err)
	}
	var todo []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.container, &r.name, &r.sealed); err != nil {
			rows.Close()
			return 0, fmt.Errorf("store: reseal: %w", err)
		}
		todo = append(todo, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("store: reseal: %w", err)
	}
	for _, r := range todo {
		ad := secretsAD(r.container, r.name)
		plain := []byte("{}")
		if r.sealed != "" {
			if plain, err = s.ring.Unseal(r.sealed, kid, ad); err != nil {
				return 0, fmt.Errorf("store: reseal %s/%s: %w", r.container, r.name, err)
			}
		}
		sealed, newKid, err := s.ring.Seal(plain, ad)
		if err != nil {
			return 0, fmt.Errorf("store: reseal %s/%s: %w", r.container, r.name, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webtasks SET secrets_sealed = ?, secrets_kid = ? WHERE container = ? AND name = ?`,
			sealed, newKid, r.container, r.name); err != nil {
			return 0, fmt.Errorf("store: reseal %s/%s: %w", r.container, r.name, err)
		}
		if err := s.notify(ctx, tx, ChangeWebtask, r.container+"/"+r.name); err != nil {
			return 0, fmt.Errorf("store: reseal %s/%s: %w", r.container, r.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("store: reseal: %w", err)
	}
	// Cached copies hold plain secrets, which did not change; drop them
	// anyway so the cache never outlives the rows it mirrors.
	for _, r := range todo {
		s.invalidate(r.container, r.name)
	}
	return len(todo), nil
}

// CountSealedWith returns how many webtasks still have secrets sealed with
// key set kid.
func (s *Store) CountSealedWith(ctx context.Context, kid string) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM webtasks WHERE secrets_kid = ?`, kid).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count sealed: %w", err)
	}
	return n, nil
}

// WebtaskToken is the stored token of one webtask.
type WebtaskToken struct {
	Container, Name, Token string
}

// WebtaskTokens returns the stored token of every webtask (no secrets are
// unsealed), ordered by container and name.
func (s *Store) WebtaskTokens(ctx context.Context) ([]WebtaskToken, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT container, name, token FROM webtasks ORDER BY container, name`)
	if err != nil {
		return nil, fmt.Errorf("store: tokens: %w", err)
	}
	defer rows.Close()
	var out []WebtaskToken
	for rows.Next() {
		var t WebtaskToken
		if err := rows.Scan(&t.Container, &t.Name, &t.Token); err != nil {
			return nil, fmt.Errorf("store: tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: tokens: %w", err)
	}
	return out, nil
}

// ErrTokenChanged: ReplaceToken found another token than the expected one
// (the webtask was updated concurrently).
var ErrTokenChanged = errdefs.New(errdefs.ErrConflict, "webtask token changed concurrently")

// ReplaceToken swaps the stored token of container/name from old to new
// (compare and swap; ErrTokenChanged when the stored token is no longer
// old, ErrNotFound when the webtask is gone). Nothing else changes.
func (s *Store) ReplaceToken(ctx context.Context, container, name, old, new string) (err error) {
	defer s.writeDone(&err)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	res, err := s.execNotify(ctx, ChangeWebtask, container+"/"+name, `UPDATE webtasks SET token = ? WHERE container = ? AND name = ? AND token = ?`,
		new, container, name, old)
	s.invalidate(container, name)
	if err != nil {
		return fmt.Errorf("store: replace token %s/%s: %w", container, name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: replace token %s/%s: %w", container, name, err)
	}
	if n == 1 {
		return nil
	}
	var one int
	switch err := s.db.QueryRowContext(ctx, `SELECT 1 FROM webtasks WHERE container = ? AND name = ?`, container, name).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: webtask %s/%s: %w", container, name, ErrWebtaskNotFound)
	case err != nil:
		return fmt.Errorf("store: replace token %s/%s: %w", container, name, err)
	}
	return fmt.Errorf("store: replace token %s/%s: %w", container, name, ErrTokenChanged)
}

// revokedQueryTimeout bounds AnyRevoked's database query (it has no
// context: token.RevokedFunc).
const revokedQueryTimeout = 5 * time.Second

// CheckRevocationsInDB makes AnyRevoked ask the database (on) instead of
// the in-memory set, or go back to the set (off). A daemon whose change
// feed is down turns it on, so another daemon's revocation is enforced at
// once; when Listen reports ChangeListening again it calls
// ReloadRevocations and turns it off.
func (s *Store) CheckRevocationsInDB(on bool) { s.revokedFromDB.Store(on) }

func (s *Store) anyRevokedInDB(jtis []string) (bool, error) {
	if len(jtis) == 0 {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), revokedQueryTimeout)
	defer cancel()
	q := `SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti IN (?` + strings.Repeat(", ?", len(jtis)-1) + `))`
	args := make([]any, len(jtis))
	for i, j := range jtis {
		args[i] = j
	}
	var revoked bool
	if err := s.db.QueryRowContext(ctx, q, args...).Scan(&revoked); err != nil {
		return false, fmt.Errorf("store: revocation check: %w", err)
	}
	return revoked, nil
}
