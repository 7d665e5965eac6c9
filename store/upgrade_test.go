package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loadFixture restores the committed dump of schema version v into a new
// database file and returns its path.
func loadFixture(t *testing.T, v int) string {
	t.Helper()
	dump, err := os.ReadFile(fixturePath(v))
	if err != nil {
		t.Fatalf("fixture v%d: %v", v, err)
	}
	path := filepath.Join(t.TempDir(), "webtaskd.db")
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(string(dump)); err != nil {
		t.Fatalf("load fixture v%d: %v", v, err)
	}
	return path
}

// TestUpgradeFromEverySchemaVersion opens the committed database of every
// schema version with this binary: the migrations bring it to the current
// version and every representative row is there and reads right.
func TestUpgradeFromEverySchemaVersion(t *testing.T) {
	cur := SchemaVersion()
	if cur < 2 {
		t.Fatalf("schema version %d", cur)
	}
	for v := 1; v <= cur; v++ {
		if _, err := os.Stat(fixturePath(v)); errors.Is(err, os.ErrNotExist) && v == cur {
			continue // the current version's dump is optional (TestUpgradeFixtures)
		}
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			ctx := context.Background()
			ring, _ := fixtureRing(t)
			s, err := Open(ctx, Options{Path: loadFixture(t, v), Ring: ring})
			if err != nil {
				t.Fatalf("open a v%d database: %v", v, err)
			}
			defer s.Close()
			var got int
			if err := s.db.QueryRowContext(context.Background(), "SELECT MAX(version) FROM schema_migrations").Scan(&got); err != nil || got != cur {
				t.Fatalf("schema version after open = %d (%v), want %d", got, err, cur)
			}
			checkFixtureData(t, s, v)
		})
	}
}

// checkFixtureData checks the rows fixtureRows wrote up to version v.
func checkFixtureData(t *testing.T, s *Store, v int) {
	ctx := context.Background()
	hello, err := s.GetWebtask(ctx, "fix", "hello")
	if err != nil {
		t.Fatalf("webtask fix/hello: %v", err)
	}
	if hello.Code != fixtureCode || hello.CodeHash != codeHash(fixtureCode) || hello.Meta["owner"] != "ops" ||
		hello.Params["P"] != "1" || hello.Token != "fixture.token.hello" || hello.CodeURL != "webtask://fix/hello" {
		t.Errorf("webtask fix/hello = %+v", hello)
	}
	if hello.Secrets["API_KEY"] != "fixture-secret-value" {
		t.Errorf("secrets of fix/hello = %v", hello.Secrets)
	}
	// Before 0006 a stored pb 0 meant "absent" and 1 meant parse.
	if hello.PB != nil {
		t.Errorf("pb of fix/hello = %d, want absent", *hello.PB)
	}
	parse, err := s.GetWebtask(ctx, "fix", "parse")
	if err != nil || parse.PB == nil || *parse.PB != 1 {
		t.Errorf("webtask fix/parse = %+v, %v; want pb 1", parse, err)
	}
	d, err := s.GetData(ctx, "fix", "hello")
	if err != nil || !strings.Contains(d.Doc, `"count":7`) || d.Etag != 3 {
		t.Errorf("storage of fix/hello = %+v, %v", d, err)
	}
	if v >= 2 {
		if r, err := s.AnyRevoked([]string{"revoked-jti-1"}); err != nil || !r {
			t.Errorf("revoked-jti-1 revoked = %v, %v", r, err)
		}
	}
	if v >= 3 {
		l, err := s.GetLimits(ctx, "fix")
		if err != nil || l.Limits.MemoryMB != 128 || l.Limits.Pids != 64 {
			t.Errorf("limits of fix = %+v, %v", l, err)
		}
	}
	if v >= 4 {
		j, err := s.GetCronJob(ctx, "fix", "hello")
		if err != nil || j.Schedule != "*/5 * * * *" || j.TZ != "Europe/Paris" || j.State != "active" {
			t.Errorf("cron job fix/hello = %+v, %v", j, err)
		}
	}
	if v >= 7 {
		if l, err := s.GetLimits(ctx, "fix"); err != nil || l.Limits.MaxResponseBytes != 4096 {
			t.Errorf("response budget of fix = %+v, %v", l, err)
		}
	}
	if v >= 8 {
		if a, err := s.ListAudit(ctx, 10, 0); err != nil || len(a) != 1 || a[0].TokenID != "fixture-jti" || a[0].Status != 200 {
			t.Errorf("audit log = %+v, %v", a, err)
		}
	}
	if v >= 9 {
		if l, err := s.GetLimits(ctx, "fix"); err != nil || l.Quotas.MaxWebtasks != 10 {
			t.Errorf("quotas of fix = %+v, %v", l, err)
		}
	}
	if v >= 5 {
		if c, err := s.GetCode(ctx, CodeHash(fixtureBlob)); err != nil || c != fixtureBlob {
			t.Errorf("code blob = %q, %v", c, err)
		}
	}
}
