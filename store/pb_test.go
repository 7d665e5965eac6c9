package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

func intPtr(n int) *int { return &n }

// wantPB reads c/name and checks its pb (nil: absent).
func wantPB(t *testing.T, s *Store, name string, want *int) *Webtask {
	t.Helper()
	w, err := s.GetWebtask(context.Background(), "c", name)
	if err != nil {
		t.Fatal(err)
	}
	if (w.PB == nil) != (want == nil) || (want != nil && *w.PB != *want) {
		t.Fatalf("%s: pb = %v, want %v", name, w.PB, want)
	}
	return w
}

// A stored webtask keeps an absent pb apart from an explicit 0.
func TestPBAbsentAndExplicitZero(t *testing.T) { bothDialects(t, testPBAbsentAndExplicitZero) }

func testPBAbsentAndExplicitZero(t *testing.T) {
	e := newEnv(t)
	s := e.open(t)
	defer s.Close()
	ctx := context.Background()
	for name, pb := range map[string]*int{"absent": nil, "zero": intPtr(0), "two": intPtr(2)} {
		w := sample("c", name)
		w.PB = pb
		if _, err := s.PutWebtask(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = e.open(t) // no cache: read the rows
	defer s.Close()
	for name, want := range map[string]*int{"absent": nil, "zero": intPtr(0), "two": intPtr(2)} {
		wantPB(t, s, name, want)
	}
}

// Migration 0006: webtasks stored before it with pb 0 (absent and 0 were
// both stored as 0) get an absent pb, the default; 1 and 2 are kept, and
// nothing else of the row or its storage is lost.
func TestMigrationPBAbsentGetsDefault(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "webtaskd.db")
	ctx := context.Background()
	db, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on&_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations(sqliteMigrations)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.version >= 6 {
			break
		}
		if err := applyMigration(ctx, db, sqliteDialect{}, m); err != nil {
			t.Fatal(err)
		}
	}
	for name, pb := range map[string]int{"old0": 0, "old1": 1, "old2": 2} {
		if _, err := db.ExecContext(ctx, `INSERT INTO webtasks (container, name, code, code_url, pb, mb, token, created_at, updated_at)
			VALUES ('c', ?, 'module.exports = cb => cb()', ?, ?, 1, 'tok', 1, 1)`, name, "webtask://c/"+name, pb); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO webtask_data (container, name, data, etag, updated_at) VALUES ('c', ?, '{"k":1}', '1', 1)`, name); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := e.open(t) // applies 0006
	defer s.Close()
	for name, want := range map[string]*int{"old0": nil, "old1": intPtr(1), "old2": intPtr(2)} {
		w := wantPB(t, s, name, want)
		if w.MB != 1 || w.Code != "module.exports = cb => cb()" || w.Token != "tok" {
			t.Fatalf("%s: row changed: %+v", name, w)
		}
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM webtask_data WHERE container = 'c' AND name = ?`, name).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%s: storage rows %d, %v", name, n, err)
		}
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE webtasks SET pb = 3 WHERE name = 'old1'`); err == nil {
		t.Fatal("pb 3 accepted by the schema")
	}
}
