package store

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webtaskd/webtaskd/store/keyring"
)

// The upgrade fixtures: testdata/schema/vNNNN.sql is an SQL dump of a
// database at schema version NNNN (migrations 1..NNNN applied, then the
// representative rows of fixtureRows for every version up to NNNN, each
// written in the schema of its own version), and testdata/schema/keys the
// key set their secrets are sealed with (test material only). They are
// committed so that a later change to an old migration, or a migration that
// loses data, fails TestUpgradeFromEverySchemaVersion.
//
// Regenerate (after adding migration N, to commit vN.sql):
//
//	go test ./store -run TestUpgradeFixtures -update-schema-fixtures
//
// Existing dumps are never rewritten unless -rewrite-schema-fixtures is
// given too: an old version's dump is history.
var (
	updateFixtures  = flag.Bool("update-schema-fixtures", false, "write missing testdata/schema dumps")
	rewriteFixtures = flag.Bool("rewrite-schema-fixtures", false, "with -update-schema-fixtures: rewrite existing dumps too")
)

const fixtureDir = "testdata/schema"

// The fixture's representative data (checked by the upgrade test).
const (
	fixtureSecret = `{"API_KEY":"fixture-secret-value"}`
	fixtureCode   = "module.exports = (ctx, cb) => cb(null, ctx.secrets.API_KEY)"
	fixtureBlob   = "module.exports = cb => cb(null, 'blob')"
)

// fixtureRows returns the rows inserted right after migration version v is
// applied, in the schema of version v. Add an entry when a migration adds a
// table or changes how rows are written.
func fixtureRows(ring *keyring.Ring, v int) ([]string, error) {
	seal := func(container, name string) (string, string, error) {
		return ring.Seal([]byte(fixtureSecret), secretsAD(container, name))
	}
	switch v {
	case 1:
		var rows []string
		// pb: a stored 0 meant "absent" before 0006, 1 meant parse.
		for _, w := range []struct {
			name string
			pb   int
		}{{"hello", 0}, {"parse", 1}} {
			sealed, kid, err := seal("fix", w.name)
			if err != nil {
				return nil, err
			}
			rows = append(rows, fmt.Sprintf(`INSERT INTO webtasks (container, name, code, code_hash, code_url, meta, params,
				secrets_sealed, secrets_kid, pb, mb, token, created_at, updated_at) VALUES
				('fix', %q, %q, %q, 'webtask://fix/%s', '{"owner":"ops"}', '{"P":"1"}', %q, %q, %d, 0, 'fixture.token.%s', 1000, 2000)`,
				w.name, fixtureCode, codeHash(fixtureCode), w.name, sealed, kid, w.pb, w.name))
		}
		rows = append(rows, `INSERT INTO webtask_data (container, name, data, etag, updated_at) VALUES ('fix', 'hello', '{"count":7}', '3', 3000)`)
		return rows, nil
	case 2:
		return []string{`INSERT INTO revoked_tokens (jti, revoked_by, revoked_at) VALUES ('revoked-jti-1', 'master', 4000)`}, nil
	case 3:
		return []string{`INSERT INTO container_limits (container, memory_mb, cpus, pids, exec_timeout_ms, max_concurrency, updated_at)
			VALUES ('fix', 128, 0.5, 64, 5000, 4, 5000)`}, nil
	case 4:
		return []string{
			`INSERT INTO cron_jobs (container, name, token, schedule, tz, state, meta, created_at, updated_at)
				VALUES ('fix', 'hello', '', '*/5 * * * *', 'Europe/Paris', 'active', '{"k":"v"}', 6000, 6000)`,
			`INSERT INTO cron_results (container, name, scheduled_at, started_at, completed_at, type, status_code, body, headers)
				VALUES ('fix', 'hello', 6100, 6101, 6102, 'success', 200, '"ok"', '{}')`,
		}, nil
	case 5:
		return []string{fmt.Sprintf(`INSERT INTO code_blobs (hash, code, created_at) VALUES (%q, %q, 7000)`,
			CodeHash(fixtureBlob), fixtureBlob)}, nil
	case 7:
		return []string{`UPDATE container_limits SET max_response_bytes = 4096 WHERE container = 'fix'`}, nil
	case 8:
		return []string{`INSERT INTO audit_log (at, jti, action, target, status)
			VALUES (8000, 'fixture-jti', 'PUT /api/webtask/:container/:name', '/api/webtask/fix/hello', 200)`}, nil
	case 9:
		return []string{`UPDATE container_limits SET max_webtasks = 10 WHERE container = 'fix'`}, nil
	}
	return nil, nil
}

// fixtureRing opens the committed fixture key set through a 0600 copy (git
// does not keep file modes tighter than 0644).
func fixtureRing(t *testing.T) (*keyring.Ring, string) {
	t.Helper()
	src := filepath.Join(fixtureDir, "keys")
	if *updateFixtures {
		if _, err := os.Stat(src); os.IsNotExist(err) {
			if _, err := keyring.Open(src); err != nil {
				t.Fatal(err)
			}
		}
	}
	dst := t.TempDir()
	des, err := os.ReadDir(src)
	if err != nil {
		t.Fatalf("fixture key set: %v", err)
	}
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(src, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, de.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ring, err := keyring.Open(dst)
	if err != nil {
		t.Fatalf("fixture key set: %v", err)
	}
	return ring, dst
}

func fixturePath(v int) string { return filepath.Join(fixtureDir, fmt.Sprintf("v%04d.sql", v)) }

// TestUpgradeFixtures writes the missing dumps when -update-schema-fixtures
// is given; otherwise it checks that every earlier version has one.
func TestUpgradeFixtures(t *testing.T) {
	cur := SchemaVersion()
	if !*updateFixtures {
		for v := 1; v < cur; v++ {
			if _, err := os.Stat(fixturePath(v)); err != nil {
				t.Errorf("no upgrade fixture for schema version %d (%v): run go test ./store -run TestUpgradeFixtures -update-schema-fixtures and commit %s",
					v, err, fixtureDir)
			}
		}
		return
	}
	ring, _ := fixtureRing(t)
	ms, err := loadMigrations(sqliteMigrations)
	if err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= cur; v++ {
		if _, err := os.Stat(fixturePath(v)); err == nil && !*rewriteFixtures {
			continue
		}
		dump, err := generateFixture(t, ring, ms[:v])
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if err := os.WriteFile(fixturePath(v), []byte(dump), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", fixturePath(v))
	}
}

// generateFixture applies ms in order to a fresh database, inserting each
// version's fixture rows after its migration, and dumps it.
func generateFixture(t *testing.T, ring *keyring.Ring, ms []migration) (string, error) {
	ctx := context.Background()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "gen.db")+"?_foreign_keys=on")
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return "", err
	}
	for _, m := range ms {
		if err := applyMigration(ctx, db, sqliteDialect{}, m); err != nil {
			return "", err
		}
		rows, err := fixtureRows(ring, m.version)
		if err != nil {
			return "", err
		}
		for _, r := range rows {
			if _, err := db.ExecContext(ctx, r); err != nil {
				return "", fmt.Errorf("fixture rows of v%d: %w", m.version, err)
			}
		}
	}
	return dumpSQL(ctx, db)
}

// dumpSQL writes the schema (in creation order) and every row of db as SQL
// statements, like the sqlite3 shell's .dump.
func dumpSQL(ctx context.Context, db *sql.DB) (string, error) {
	var b strings.Builder
	b.WriteString("-- Generated by store/upgrade_fixtures_test.go; do not edit.\nPRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n")
	rows, err := db.QueryContext(ctx, `SELECT type, name, sql FROM sqlite_master
		WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid`)
	if err != nil {
		return "", err
	}
	var tables []string
	for rows.Next() {
		var typ, name, stmt string
		if err := rows.Scan(&typ, &name, &stmt); err != nil {
			rows.Close()
			return "", err
		}
		b.WriteString(stmt + ";\n")
		if typ == "table" {
			tables = append(tables, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", err
	}
	for _, tbl := range tables {
		var cols []string
		crows, err := db.QueryContext(ctx, "SELECT name FROM pragma_table_info(?) ORDER BY cid", tbl)
		if err != nil {
			return "", err
		}
		for crows.Next() {
			var c string
			if err := crows.Scan(&c); err != nil {
				crows.Close()
				return "", err
			}
			cols = append(cols, c)
		}
		crows.Close()
		quoted := make([]string, len(cols))
		for i, c := range cols {
			quoted[i] = "quote(" + c + ")"
		}
		q := fmt.Sprintf("SELECT %s FROM %s ORDER BY %s", strings.Join(quoted, " || ',' || "), tbl, strings.Join(cols, ", "))
		vrows, err := db.QueryContext(ctx, q)
		if err != nil {
			return "", err
		}
		for vrows.Next() {
			var vals string
			if err := vrows.Scan(&vals); err != nil {
				vrows.Close()
				return "", err
			}
			fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES (%s);\n", tbl, strings.Join(cols, ", "), vals)
		}
		vrows.Close()
	}
	b.WriteString("COMMIT;\n")
	return b.String(), nil
}
