package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/webtaskd/webtaskd/store/keyring"
)

// Options configures Open. Exactly one of Path (SQLite) and DSN
// (PostgreSQL) is set.
type Options struct {
	// Path is the SQLite file, e.g. <data-dir>/webtaskd.db (its -wal and
	// -shm companions live next to it).
	Path string
	// DSN is a PostgreSQL URL (postgres://user@host:port/db?…): the store
	// shared by the daemons of a cluster (postgres.go).
	DSN string
	// NodeID names this daemon among those sharing a PostgreSQL store:
	// module install state (node_modules) is per host, recorded under it.
	NodeID string
	// KEK is the key-encryption key (32 bytes; PostgreSQL only): it wraps
	// the key sets and seals the master token stored in the database.
	KEK []byte
	// Ring seals and unseals webtask secrets. Required with Path. With DSN,
	// nil loads the database's key ring (minted by the first daemon); a
	// ring given must be the Ring of another Store on the same database
	// (stores of one process sharing it).
	Ring *keyring.Ring
	// Now is the clock for created_at/updated_at; nil means time.Now.
	Now func() time.Time
	// Quotas bound what one container may store (zero: unlimited).
	Quotas Quotas
	// CheckpointEvery is how often the WAL's size is checked, and the WAL
	// truncated when it is over 1 MiB; 0 means a minute (SQLite only).
	CheckpointEvery time.Duration
}

// Store is the webtask store, on SQLite (one host) or PostgreSQL (shared by
// a cluster). It is safe for concurrent use. Writes are serialised
// in-process; GetWebtask is served from an in-memory cache when warm (on
// PostgreSQL, other daemons' writes reach it through the change feed:
// Listen, InvalidateWebtask).
type Store struct {
	db   *conn
	path string // SQLite only
	ring *keyring.Ring
	now  func() time.Time
	// quotas bound each container's webtasks, cron jobs and storage.
	quotas Quotas

	// PostgreSQL only: the pool behind db (Listen takes its own
	// connection from it) and the key-encryption key.
	pool *pgxpool.Pool
	kek  []byte
	node string

	// full is set while writes fail for lack of space (nospace.go).
	full atomic.Bool
	// The checkpointer (nospace.go, SQLite only): checkpointNow asks for a
	// TRUNCATE checkpoint; checkpointStop ends it, checkpointDone says it
	// ended.
	checkpointNow    chan struct{}
	checkpointStop   chan struct{}
	checkpointDone   chan struct{}
	stopCheckpointer sync.Once

	// writeMu serialises writes (DB transaction + cache update) so the
	// cache always reflects the last committed write.
	writeMu sync.Mutex

	cacheMu sync.RWMutex
	cache   map[cacheKey]*Webtask
	// gen is bumped by every write; a cache fill from a read that started
	// before a write is dropped.
	gen    uint64
	closed bool

	// membersMu guards heartbeated: this process heartbeated already
	// (members.go).
	membersMu   sync.Mutex
	heartbeated bool

	// revoked is the in-memory set of revoked jtis (security.go).
	revMu   sync.RWMutex
	revoked map[string]struct{}
	// revokedFromDB: AnyRevoked asks the database (CheckRevocationsInDB).
	revokedFromDB atomic.Bool

	// codes caches content-addressed code blobs (codes.go).
	codes codeCache
	// transpiled maps a source hash and language to the code blob hash of
	// its transpiled form (transpiled.go); entries never change.
	transpiled sync.Map
}

type cacheKey struct{ container, name string }

// Open opens the store of opt: the SQLite file opt.Path (created if
// needed, WAL, foreign keys, a busy timeout) or the PostgreSQL database
// opt.DSN, and applies pending migrations.
func Open(ctx context.Context, opt Options) (*Store, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	var (
		s   *Store
		err error
	)
	switch {
	case opt.Path != "" && opt.DSN != "":
		return nil, fmt.Errorf("store: both a SQLite path and a PostgreSQL DSN given")
	case opt.DSN != "":
		s, err = openPostgres(ctx, opt)
	case opt.Path != "":
		s, err = openSQLite(ctx, opt)
	default:
		return nil, fmt.Errorf("store: empty path")
	}
	if err != nil {
		return nil, err
	}
	if err := s.loadRevoked(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// newStore is the dialect-independent part of a Store on db.
func newStore(db *conn, opt Options) *Store {
	return &Store{db: db, ring: opt.Ring, now: opt.Now, quotas: opt.Quotas, node: opt.NodeID, cache: map[cacheKey]*Webtask{},
		checkpointNow: make(chan struct{}, 1), checkpointStop: make(chan struct{}), checkpointDone: make(chan struct{})}
}

// Close stops the checkpointer, closes the database and drops the cache.
func (s *Store) Close() error {
	s.stopCheckpointer.Do(func() {
		close(s.checkpointStop)
		<-s.checkpointDone
	})
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.cacheMu.Lock()
	s.closed = true
	s.cache = map[cacheKey]*Webtask{}
	s.gen++
	s.cacheMu.Unlock()
	err := s.db.Close()
	if s.pool != nil {
		s.pool.Close()
	}
	return err
}

// IsShared reports whether the store is shared with other daemons
// (PostgreSQL): their writes reach this one through the change feed.
func (s *Store) IsShared() bool { return s.pool != nil }

// Ring is the key ring the store seals secrets with (Options.Ring, or on
// PostgreSQL the database's).
func (s *Store) Ring() *keyring.Ring { return s.ring }

// SchemaVersion is the schema version this binary migrates databases to
// (the number of its last embedded migration).
func SchemaVersion() int {
	ms, err := loadMigrations(sqliteMigrations)
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

type migration struct {
	version int
	name    string
	sql     string
}

// migrationSet is one dialect's embedded migrations: dir/NNNN_name.sql.
type migrationSet struct {
	fsys embed.FS
	dir  string
	// table creates schema_migrations if it does not exist.
	table string
}

func loadMigrations(set migrationSet) ([]migration, error) {
	des, err := fs.ReadDir(set.fsys, set.dir)
	if err != nil {
		return nil, fmt.Errorf("store: %w: %w", ErrMigration, err)
	}
	var ms []migration
	seen := map[int]string{}
	for _, de := range des {
		name := de.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("store: bad migration file name %q: %w", name, ErrMigration)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("store: migrations %q and %q share version %d: %w", prev, name, v, ErrMigration)
		}
		seen[v] = name
		b, err := set.fsys.ReadFile(set.dir + "/" + name)
		if err != nil {
			return nil, fmt.Errorf("store: %w: %w", ErrMigration, err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	// Versions are contiguous from 1: a gap would be skipped forever by a
	// database that already applied a later version.
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("store: migration %q: versions must be contiguous from 1, want %04d: %w", m.name, i+1, ErrMigration)
		}
	}
	return ms, nil
}

// migrator is what migrate runs on: a *sql.DB, or the *sql.Conn holding
// PostgreSQL's migration lock.
type migrator interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// migrate applies every migration of set newer than the recorded
// version, each in its own transaction together with its
// schema_migrations row.
func migrate(ctx context.Context, db migrator, d dialect, set migrationSet) error {
	ms, err := loadMigrations(set)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, set.table); err != nil {
		return fmt.Errorf("store: %w: %w", ErrMigration, err)
	}
	var cur int
	if err := db.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&cur); err != nil {
		return fmt.Errorf("store: %w: %w", ErrMigration, err)
	}
	if n := len(ms); n > 0 && cur > ms[n-1].version {
		return fmt.Errorf("store: refusing to open: the database is at schema version %d, newer than this binary knows (%d); "+
			"it was written by a newer webtaskd: run that version, or restore a backup taken before the upgrade "+
			"(migrations are forward-only): %w", cur, ms[n-1].version, ErrMigration)
	}
	for _, m := range ms {
		if m.version <= cur {
			continue
		}
		if err := applyMigration(ctx, db, d, m); err != nil {
			return err
		}
		slog.Info("store: applied migration", "dialect", d.name(), "version", m.version, "name", m.name)
	}
	return nil
}

func applyMigration(ctx context.Context, db migrator, d dialect, m migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migration %s: %w: %w", m.name, ErrMigration, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("store: migration %s: %w: %w", m.name, ErrMigration, err)
	}
	if _, err := tx.ExecContext(ctx, d.rebind("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
		m.version, m.name, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("store: migration %s: %w: %w", m.name, ErrMigration, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migration %s: %w: %w", m.name, ErrMigration, err)
	}
	return nil
}
