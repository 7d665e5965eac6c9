package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The change feed (PostgreSQL only). Every write that changes something a
// daemon caches or acts on runs pg_notify(ChangeChannel, "<kind>:<id>") in
// its own transaction, so the notification is sent exactly when the change
// commits. Payloads are ids only, never values or secrets (and NOTIFY's
// limit is 8000 bytes). Other daemons receive them through Listen and drop
// or reload what they cache.

// ChangeChannel is the PostgreSQL notification channel of the change feed.
const ChangeChannel = "webtaskd_changes"

// The kinds of change and the ids they carry.
const (
	// ChangeWebtask: a webtask was written or deleted (its storage
	// document excepted); id "container/name".
	ChangeWebtask = "webtask"
	// ChangeRevocation: a token was revoked; id its jti.
	ChangeRevocation = "revocation"
	// ChangeKeys: the key sets changed (rotation, retirement: id the kid)
	// or the cluster's master token did (id "*").
	ChangeKeys = "keys"
	// ChangeLimits: a container's limits or quotas changed; id the
	// container.
	ChangeLimits = "limits"
	// ChangeCron: a cron job was written or deleted; id "container/name".
	ChangeCron = "cron"
	// ChangeContainer: something container-wide changed; id the
	// container. Reserved: no store write sends it yet (a container's
	// limits are ChangeLimits).
	ChangeContainer = "container"
	// ChangeListening is not sent by writes: Listen reports it once its
	// LISTEN is in place (id ""). Changes made before may have been missed:
	// drop the caches (InvalidateAll) and reload (ReloadRevocations,
	// ReloadKeys).
	ChangeListening = "listening"
)

// notify announces kind:id on the change feed inside the write's
// transaction q (nothing on SQLite).
func (s *Store) notify(ctx context.Context, q querier, kind, id string) error {
	stmt := s.db.d.notify()
	if stmt == "" {
		return nil
	}
	if _, err := q.ExecContext(ctx, stmt, ChangeChannel, kind+":"+id); err != nil {
		return fmt.Errorf("notify %s: %w", kind, err)
	}
	return nil
}

// inTx runs fn in a transaction and commits it when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *txn) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// ErrNotShared: the operation needs the shared (PostgreSQL) store.
var ErrNotShared = errors.New("store: only a PostgreSQL store is shared (this one is SQLite)")

// Listen receives the change feed on a dedicated connection (not one of
// the pool's) until ctx is done or the connection fails, calling fn for
// each change (kind one of the Change* constants, id as documented there)
// from Listen's goroutine, one at a time. Once LISTEN is in place it calls
// fn(ChangeListening, "") first. It returns ctx.Err() when ctx ends, and
// another error when the connection is lost or cannot be made: then call
// it again (with a backoff), and until it reports ChangeListening do not
// trust the caches (changes are being missed). SQLite: ErrNotShared.
func (s *Store) Listen(ctx context.Context, fn func(kind, id string)) error {
	if s.pool == nil {
		return ErrNotShared
	}
	c, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("store: listen: connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		c.Close(cctx)
	}()
	if _, err := c.Exec(ctx, "LISTEN "+ChangeChannel); err != nil {
		return fmt.Errorf("store: listen: %w", err)
	}
	fn(ChangeListening, "")
	for {
		n, err := c.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("store: listen: connection lost: %w", err)
		}
		kind, id, ok := strings.Cut(n.Payload, ":")
		if !ok {
			continue // not ours
		}
		fn(kind, id)
	}
}

// InvalidateWebtask drops the cached copy of webtask container/name (and
// keeps in-flight reads from caching what they read before).
func (s *Store) InvalidateWebtask(container, name string) { s.invalidate(container, name) }

// InvalidateAll drops every cached webtask (code blobs and transpiled
// code are content-addressed: they cannot go stale).
func (s *Store) InvalidateAll() {
	s.cacheMu.Lock()
	s.gen++
	if !s.closed {
		s.cache = map[cacheKey]*Webtask{}
	}
	s.cacheMu.Unlock()
}

// ReloadRevocations re-reads the revoked jtis from the database (after a
// revocation notification, or when the change feed was down).
func (s *Store) ReloadRevocations(ctx context.Context) error { return s.loadRevoked(ctx) }

// execNotify runs one write statement and announces kind:id in the same
// transaction (on SQLite, where there is no feed, the statement alone).
func (s *Store) execNotify(ctx context.Context, kind, id, query string, args ...any) (sql.Result, error) {
	if s.db.d.notify() == "" {
		return s.db.ExecContext(ctx, query, args...)
	}
	var res sql.Result
	err := s.inTx(ctx, func(tx *txn) error {
		var err error
		if res, err = tx.ExecContext(ctx, query, args...); err != nil {
			return err
		}
		return s.notify(ctx, tx, kind, id)
	})
	return res, err
}
