package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver

	"github.com/webtaskd/webtaskd/store/keyring"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// busyTimeoutMS is how long SQLite waits on a locked database before
// returning SQLITE_BUSY.
const busyTimeoutMS = 5000

// Options configures Open.
type Options struct {
	// Path is the SQLite file, e.g. <data-dir>/webtaskd.db (its -wal and
	// -shm companions live next to it).
	Path string
	// Ring seals and unseals webtask secrets. Required.
	Ring *keyring.Ring
	// Now is the clock for created_at/updated_at; nil means time.Now.
	Now func() time.Time
	// Quotas bound what one container may store (zero: unlimited).
	Quotas Quotas
	// CheckpointEvery is how often the WAL's size is checked, and the WAL
	// truncated when it is over 1 MiB; 0 means a minute.
	CheckpointEvery time.Duration
}

// Store is the SQLite-backed webtask store. It is safe for concurrent use.
// Writes are serialised in-process; GetWebtask is served from an in-memory
// cache when warm.
type Store struct {
	db   *sql.DB
	path string
	ring *keyring.Ring
	now  func() time.Time
	// quotas bound each container's webtasks, cron jobs and storage.
	quotas Quotas

	// full is set while writes fail for lack of space (nospace.go).
	full atomic.Bool
	// The checkpointer (nospace.go): checkpointNow asks for a TRUNCATE
	// checkpoint; checkpointStop ends it, checkpointDone says it ended.
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

	// revoked is the in-memory set of revoked jtis (security.go).
	revMu   sync.RWMutex
	revoked map[string]struct{}

	// codes caches content-addressed code blobs (codes.go).
	codes codeCache
	// transpiled maps a source hash and language to the code blob hash of
	// its transpiled form (transpiled.go); entries never change.
	transpiled sync.Map
}

type cacheKey struct{ container, name string }

// Open opens (creating if needed) the database at opt.Path with WAL,
// foreign keys and a busy timeout, and applies pending migrations.
func Open(ctx context.Context, opt Options) (*Store, error) {
	if opt.Path == "" {
		return nil, fmt.Errorf("store: empty path")
	}
	if opt.Ring == nil {
		return nil, fmt.Errorf("store: nil key ring")
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if err := prepareFiles(opt.Path); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", strconv.Itoa(busyTimeoutMS))
	q.Set("_txlock", "immediate")
	dsn := "file:" + opt.Path + "?" + q.Encode()
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", opt.Path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", opt.Path, err)
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || !strings.EqualFold(mode, "wal") {
		db.Close()
		return nil, fmt.Errorf("store: journal_mode is %q, want wal (err %v)", mode, err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db, path: opt.Path, ring: opt.Ring, now: opt.Now, quotas: opt.Quotas, cache: map[cacheKey]*Webtask{},
		checkpointNow: make(chan struct{}, 1), checkpointStop: make(chan struct{}), checkpointDone: make(chan struct{})}
	if err := s.loadRevoked(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if opt.CheckpointEvery <= 0 {
		opt.CheckpointEvery = defaultCheckpointEvery
	}
	go s.checkpointer(opt.CheckpointEvery)
	return s, nil
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
	return s.db.Close()
}

// SchemaVersion is the schema version this binary migrates databases to
// (the number of its last embedded migration).
func SchemaVersion() int {
	ms, err := loadMigrations()
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

func loadMigrations() ([]migration, error) {
	des, err := fs.ReadDir(migrationFS, "migrations")
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
		b, err := migrationFS.ReadFile("migrations/" + name)
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

// migrate applies every embedded migration newer than the recorded
// version, each in its own transaction together with its
// schema_migrations row.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
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
		if err := applyMigration(ctx, db, m); err != nil {
			return err
		}
		slog.Info("store: applied migration", "version", m.version, "name", m.name)
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migration %s: %w: %w", m.name, ErrMigration, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("store: migration %s: %w: %w", m.name, ErrMigration, err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
		m.version, m.name, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("store: migration %s: %w: %w", m.name, ErrMigration, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migration %s: %w: %w", m.name, ErrMigration, err)
	}
	return nil
}
