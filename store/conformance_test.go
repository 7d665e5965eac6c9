package store

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/webtaskd/webtaskd/store/pgtest"
)

// The conformance suite: every store test that is not SQLite-only by
// nature runs against both dialects, as subtests "sqlite" and "postgres"
// (bothDialects). The env of a test (newEnv) is built for the dialect its
// subtest names: a SQLite file in a temp dir, or a fresh database on the
// test binary's throwaway PostgreSQL server (store/pgtest; skipped loudly
// when PostgreSQL is not installed, failed under CI=true).
//
// SQLite-only by nature, and so run once: TestOpenPragmasAndMigrations
// (PRAGMAs), TestRefusesNewerSchema and TestMigrationPBAbsentGetsDefault
// and the upgrade tests (SQLite's migration history and fixtures), the
// files tests (the database file's mode, key references read from the
// file), TestFullDiskRefusesWritesThenRecovers and TestWALStaysBounded
// (SQLite's WAL and SQLITE_FULL), TestSnapshot (VACUUM INTO), and the
// tests of no store at all (TestCloneIsDeep, TestCodeCacheIsByteBounded).
// PostgreSQL-only: postgres_test.go.

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// bothDialects runs fn as subtest "sqlite" and subtest "postgres".
func bothDialects(t *testing.T, fn func(t *testing.T)) {
	t.Run("sqlite", fn)
	t.Run("postgres", fn)
}

// isPostgres reports whether t runs under bothDialects' "postgres" subtest.
func isPostgres(t testing.TB) bool {
	return strings.Contains(t.Name()+"/", "/postgres/")
}

// newPostgresEnv fills e for a fresh PostgreSQL database: its DSN, a KEK,
// and the key ring of a first store (kept open until the test ends: the
// ring writes through it), which every store of e then shares.
func newPostgresEnv(t testing.TB, e *env) {
	t.Helper()
	e.dsn = pgtest.NewDatabase(t)
	e.kek = make([]byte, 32)
	rand.Read(e.kek)
	boot, err := Open(context.Background(), Options{DSN: e.dsn, KEK: e.kek, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { boot.Close() })
	e.ring = boot.Ring()
}

// options completes o for e's database (path or DSN, ring, clock).
func (e *env) options(o Options) Options {
	if e.dsn != "" {
		o.DSN, o.KEK = e.dsn, e.kek
	} else {
		o.Path = filepath.Join(e.dir, "webtaskd.db")
	}
	o.Ring, o.Now = e.ring, e.clock.Now
	return o
}

// storedText is everything stored in e's database as bytes: the SQLite
// files, or the text of every row of every table on PostgreSQL.
func (e *env) storedText(t *testing.T) []byte {
	t.Helper()
	if e.dsn == "" {
		var all []byte
		dbPath := filepath.Join(e.dir, "webtaskd.db")
		for _, p := range []string{dbPath, dbPath + "-wal", dbPath + "-shm"} {
			b, err := os.ReadFile(p)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		return all
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, tb := range tables {
		var text *string
		if err := c.QueryRow(ctx, `SELECT string_agg(x::text, E'\n') FROM `+pgx.Identifier{tb}.Sanitize()+` x`).Scan(&text); err != nil {
			t.Fatal(err)
		}
		if text != nil {
			all = append(all, *text...)
		}
	}
	return all
}
