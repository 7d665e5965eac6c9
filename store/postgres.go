package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// PostgreSQL: the store shared by the daemons of a cluster (pgx/v5 through
// database/sql). Every daemon keeps its own caches; writes announce what
// they changed on the change feed (notify.go) in their own transaction.

//go:embed migrations_pg/*.sql
var postgresMigrationFS embed.FS

// postgresMigrations are the PostgreSQL schema's migrations (their own
// numbering: 0001 is the whole schema of SQLite's 0001–0011 plus the
// cluster's tables).
var postgresMigrations = migrationSet{fsys: postgresMigrationFS, dir: "migrations_pg", table: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at BIGINT  NOT NULL
	)`}

// closeTimeout bounds closing a dedicated connection.
const closeTimeout = 5 * time.Second

// migrationLockKey is the pg_advisory_lock key held while migrating, so
// daemons starting together apply each migration once.
var migrationLockKey = func() int64 {
	h := fnv.New64a()
	h.Write([]byte("webtaskd schema migrations"))
	return int64(h.Sum64())
}()

// openPostgres connects to opt.DSN, applies pending migrations under the
// migration lock, and loads (or, on the first start, mints) the key ring
// from the database.
func openPostgres(ctx context.Context, opt Options) (_ *Store, err error) {
	if len(opt.KEK) != kekLenBytes {
		return nil, fmt.Errorf("store: the key-encryption key is %d bytes, want %d (head -c 32 /dev/urandom > file)", len(opt.KEK), kekLenBytes)
	}
	cfg, err := pgxpool.ParseConfig(opt.DSN)
	if err != nil {
		// pgx's message may quote the DSN, password included: do not wrap.
		return nil, fmt.Errorf("store: the PostgreSQL DSN does not parse")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect to PostgreSQL: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer func() {
		if err != nil {
			db.Close()
			pool.Close()
		}
	}()
	if err := db.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("store: connect to PostgreSQL: %w", err)
	}
	d := postgresDialect{}
	if err := migratePostgres(ctx, db, d); err != nil {
		return nil, err
	}
	s := newStore(&conn{db: db, d: d}, opt)
	s.pool = pool
	s.kek = append([]byte(nil), opt.KEK...)
	// No checkpointer: mark it stopped.
	s.stopCheckpointer.Do(func() {})
	if s.ring == nil {
		if s.ring, err = s.openRing(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// migratePostgres applies pending migrations while holding the session
// advisory lock migrationLockKey on one connection: a concurrent start
// waits for it, then finds nothing left to apply. The lock is held only
// while migrating (a crashed holder's session ends and frees it).
func migratePostgres(ctx context.Context, db *sql.DB, d dialect) error {
	c, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: %w: %w", ErrMigration, err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		return fmt.Errorf("store: migration lock: %w: %w", ErrMigration, err)
	}
	defer func() {
		// A fresh context: the caller's may be done, and the lock must go
		// (else the connection, returned to the pool, would keep it).
		uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.ExecContext(uctx, "SELECT pg_advisory_unlock($1)", migrationLockKey); err != nil {
			// Do not give a connection that may hold the lock back to the pool.
			c.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return migrate(ctx, c, d, postgresMigrations)
}
