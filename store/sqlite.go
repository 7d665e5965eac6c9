package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

//go:embed migrations/*.sql
var sqliteMigrationFS embed.FS

// sqliteMigrations are the SQLite schema's migrations.
var sqliteMigrations = migrationSet{fsys: sqliteMigrationFS, dir: "migrations", table: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`}

// busyTimeoutMS is how long SQLite waits on a locked database before
// returning SQLITE_BUSY.
const busyTimeoutMS = 5000

// openSQLite opens (creating if needed) the database at opt.Path with WAL,
// foreign keys and a busy timeout, applies pending migrations and starts
// the WAL checkpointer.
func openSQLite(ctx context.Context, opt Options) (*Store, error) {
	if opt.Ring == nil {
		return nil, fmt.Errorf("store: nil key ring")
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
	d := sqliteDialect{}
	if err := migrate(ctx, db, d, sqliteMigrations); err != nil {
		db.Close()
		return nil, err
	}
	s := newStore(&conn{db: db, d: d}, opt)
	s.path = opt.Path
	if opt.CheckpointEvery <= 0 {
		opt.CheckpointEvery = defaultCheckpointEvery
	}
	go s.checkpointer(opt.CheckpointEvery)
	return s, nil
}
