package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/store/keyring"
)

// fakeClock is a settable clock safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	dir   string
	ring  *keyring.Ring
	clock *fakeClock
	// PostgreSQL (conformance_test.go): the database and the KEK; dsn is
	// "" for SQLite.
	dsn string
	kek []byte
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), clock: &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}}
	if isPostgres(t) {
		newPostgresEnv(t, e)
		return e
	}
	ring, err := keyring.Open(filepath.Join(e.dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	e.ring = ring
	return e
}

func (e *env) open(t testing.TB) *Store { return e.openWith(t, Options{}) }

// openWith opens a store of e with o's other options.
func (e *env) openWith(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), e.options(o))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// openTestEnv opens a store in a fresh env; the store is closed when the
// test ends.
func openTestEnv(t *testing.T) (*env, *Store) {
	t.Helper()
	e := newEnv(t)
	s := e.open(t)
	t.Cleanup(func() { _ = s.Close() })
	return e, s
}

// openTestStore is openTestEnv for tests that need only the store.
func openTestStore(t *testing.T) *Store {
	t.Helper()
	_, s := openTestEnv(t)
	return s
}

func sample(container, name string) *Webtask {
	return &Webtask{
		Container: container,
		Name:      name,
		Code:      "module.exports = cb => cb(null, 'hi');",
		CodeURL:   "webtask://" + container + "/" + name,
		Meta:      map[string]string{"team": "a"},
		Params:    map[string]any{"n": 1.0, "s": "p"},
		Secrets:   map[string]any{"API_KEY": "k-" + name},
		PB:        intPtr(1),
		MB:        1,
		Token:     "tok." + name,
	}
}

func TestOpenPragmasAndMigrations(t *testing.T) {
	e := newEnv(t)
	s := e.open(t)
	defer s.Close()
	ctx := context.Background()
	var fk int
	var mode string
	// Check on several pooled connections.
	for i := 0; i < 3; i++ {
		conn, err := s.db.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
			t.Fatalf("foreign_keys = %d, %v", fk, err)
		}
		if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			t.Fatalf("journal_mode = %q, %v", mode, err)
		}
	}
	ms, err := loadMigrations(sqliteMigrations)
	if err != nil {
		t.Fatal(err)
	}
	var v, n int
	if err := s.db.QueryRowContext(context.Background(), "SELECT MAX(version), COUNT(*) FROM schema_migrations").Scan(&v, &n); err != nil {
		t.Fatal(err)
	}
	if v != ms[len(ms)-1].version || n != len(ms) {
		t.Fatalf("schema_migrations max=%d count=%d, want %d/%d", v, n, ms[len(ms)-1].version, len(ms))
	}
	s.Close()
	// Reopen applies nothing twice.
	s2 := e.open(t)
	defer s2.Close()
	if err := s2.db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil || n != len(ms) {
		t.Fatalf("after reopen count=%d, %v", n, err)
	}
}

// TestRefusesNewerSchema: a database one version ahead of the binary
// (current+1) is refused with a message saying so.
func TestRefusesNewerSchema(t *testing.T) {
	e := newEnv(t)
	s := e.open(t)
	cur := SchemaVersion()
	if _, err := s.db.ExecContext(context.Background(), "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', 0)", cur+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(context.Background(), Options{Path: filepath.Join(e.dir, "webtaskd.db"), Ring: e.ring})
	if !errors.Is(err, ErrMigration) {
		t.Fatalf("err = %v, want ErrMigration", err)
	}
	want := fmt.Sprintf("schema version %d, newer than this binary knows (%d)", cur+1, cur)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestCRUD(t *testing.T) { bothDialects(t, testCRUD) }

func testCRUD(t *testing.T) {
	e, s := openTestEnv(t)
	ctx := context.Background()

	if _, err := s.GetWebtask(ctx, "c1", "w1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	in := sample("c1", "w1")
	got, err := s.PutWebtask(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if got == in {
		t.Fatal("Put returned the caller's pointer")
	}
	if sum := sha256.Sum256([]byte(in.Code)); got.CodeHash != hex.EncodeToString(sum[:]) {
		t.Fatalf("CodeHash %q", got.CodeHash)
	}
	if in.CodeHash != "" {
		t.Fatal("Put modified its argument")
	}
	if !got.CreatedAt.Equal(e.clock.Now()) || !got.UpdatedAt.Equal(e.clock.Now()) {
		t.Fatalf("times %v/%v, want %v", got.CreatedAt, got.UpdatedAt, e.clock.Now())
	}
	r, err := s.GetWebtask(ctx, "c1", "w1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Code != in.Code || r.CodeURL != in.CodeURL || r.Token != in.Token || r.PB == nil || *r.PB != 1 || r.MB != 1 ||
		r.Meta["team"] != "a" || r.Params["n"] != 1.0 || r.Params["s"] != "p" || r.Secrets["API_KEY"] != "k-w1" {
		t.Fatalf("Get = %+v", r)
	}
	if err := s.DeleteWebtask(ctx, "c1", "w1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetWebtask(ctx, "c1", "w1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after delete: %v", err)
	}
	if err := s.DeleteWebtask(ctx, "c1", "w1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete missing: %v", err)
	}
	if n, err := s.CountWebtasks(ctx); err != nil || n != 0 {
		t.Fatalf("Count = %d, %v", n, err)
	}
}

func TestNilMapsStoredAsEmpty(t *testing.T) { bothDialects(t, testNilMapsStoredAsEmpty) }

func testNilMapsStoredAsEmpty(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if _, err := s.PutWebtask(ctx, &Webtask{Container: "c", Name: "n", CodeURL: "https://example.com/x.js"}); err != nil {
		t.Fatal(err)
	}
	s.invalidate("c", "n")
	w, err := s.GetWebtask(ctx, "c", "n")
	if err != nil {
		t.Fatal(err)
	}
	if w.Meta == nil || w.Params == nil || w.Secrets == nil || len(w.Meta)+len(w.Params)+len(w.Secrets) != 0 {
		t.Fatalf("maps = %v %v %v", w.Meta, w.Params, w.Secrets)
	}
}

func TestUpsertKeepsCreatedAt(t *testing.T) { bothDialects(t, testUpsertKeepsCreatedAt) }

func testUpsertKeepsCreatedAt(t *testing.T) {
	e, s := openTestEnv(t)
	ctx := context.Background()
	first, err := s.PutWebtask(ctx, sample("c", "n"))
	if err != nil {
		t.Fatal(err)
	}
	created := e.clock.Now()
	e.clock.Advance(time.Hour)
	w := sample("c", "n")
	w.Code = "module.exports = cb => cb(null, 'v2');"
	w.Meta = nil
	w.Secrets = map[string]any{"NEW": "v"}
	second, err := s.PutWebtask(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if !second.CreatedAt.Equal(created) || !second.UpdatedAt.Equal(created.Add(time.Hour)) {
		t.Fatalf("created %v updated %v", second.CreatedAt, second.UpdatedAt)
	}
	if second.CodeHash == first.CodeHash {
		t.Fatal("code hash unchanged after code change")
	}
	s.invalidate("c", "n") // force a disk read
	r, err := s.GetWebtask(ctx, "c", "n")
	if err != nil {
		t.Fatal(err)
	}
	if !r.CreatedAt.Equal(created) || !r.UpdatedAt.Equal(created.Add(time.Hour)) || r.Code != w.Code ||
		len(r.Meta) != 0 || r.Secrets["NEW"] != "v" || r.Secrets["API_KEY"] != nil || r.CodeHash != second.CodeHash {
		t.Fatalf("after upsert Get = %+v", r)
	}
	if n, _ := s.CountWebtasks(ctx); n != 1 {
		t.Fatalf("count %d after upsert", n)
	}
}

func TestList(t *testing.T) { bothDialects(t, testList) }

func testList(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	put := func(c, n string, meta map[string]string) {
		w := sample(c, n)
		w.Meta = meta
		if _, err := s.PutWebtask(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	// Inserted out of order on purpose.
	put("c2", "b", map[string]string{"env": "prod"})
	put("c1", "b", map[string]string{"env": "prod", "team": "x"})
	put("c1", "a", map[string]string{"env": "dev", "team": "x"})
	put("c1", "c", map[string]string{"env": "prod", "team": "y"})
	put("c2", "a", nil)

	names := func(ws []*Webtask) string {
		var b bytes.Buffer
		for _, w := range ws {
			fmt.Fprintf(&b, "%s/%s ", w.Container, w.Name)
		}
		return b.String()
	}
	cases := []struct {
		o    ListOptions
		want string
	}{
		{ListOptions{}, "c1/a c1/b c1/c c2/a c2/b "},
		{ListOptions{Container: "c1"}, "c1/a c1/b c1/c "},
		{ListOptions{Container: "nope"}, ""},
		{ListOptions{Meta: map[string]string{"env": "prod"}}, "c1/b c1/c c2/b "},
		{ListOptions{Meta: map[string]string{"env": "prod", "team": "x"}}, "c1/b "},
		{ListOptions{Meta: map[string]string{"env": "prod", "team": "z"}}, ""},
		{ListOptions{Container: "c2", Meta: map[string]string{"env": "prod"}}, "c2/b "},
		{ListOptions{Meta: map[string]string{"team": "x"}, Limit: 1}, "c1/a "},
		{ListOptions{Meta: map[string]string{"team": "x"}, Offset: 1}, "c1/b "},
		{ListOptions{Offset: 1, Limit: 2}, "c1/b c1/c "},
		{ListOptions{Offset: 10}, ""},
		{ListOptions{Meta: map[string]string{"env'": "prod"}}, ""}, // quoting is parameterised
	}
	for _, c := range cases {
		ws, err := s.ListWebtasks(ctx, c.o)
		if err != nil {
			t.Fatalf("%+v: %v", c.o, err)
		}
		if got := names(ws); got != c.want {
			t.Errorf("List(%+v) = %q, want %q", c.o, got, c.want)
		}
	}
	ws, err := s.ListWebtasks(ctx, ListOptions{Container: "c1", Limit: 1})
	if err != nil || len(ws) != 1 || ws[0].Secrets["API_KEY"] != "k-a" || ws[0].Meta["team"] != "x" {
		t.Fatalf("list item = %+v, %v", ws, err)
	}
	if n, err := s.CountWebtasks(ctx); err != nil || n != 5 {
		t.Fatalf("count = %d, %v", n, err)
	}
}

func TestListDefaultLimit(t *testing.T) { bothDialects(t, testListDefaultLimit) }

func testListDefaultLimit(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	for i := 0; i < defaultListLimit+5; i++ {
		if _, err := s.PutWebtask(ctx, &Webtask{Container: "c", Name: fmt.Sprintf("w%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := s.ListWebtasks(ctx, ListOptions{})
	if err != nil || len(ws) != defaultListLimit {
		t.Fatalf("len = %d, %v", len(ws), err)
	}
}

func TestReopenPersists(t *testing.T) { bothDialects(t, testReopenPersists) }

func testReopenPersists(t *testing.T) {
	e := newEnv(t)
	s := e.open(t)
	ctx := context.Background()
	want, err := s.PutWebtask(ctx, sample("c", "persist"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetWebtask(ctx, "c", "persist"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after close: %v", err)
	}
	s2 := e.open(t)
	defer s2.Close()
	got, err := s2.GetWebtask(ctx, "c", "persist")
	if err != nil {
		t.Fatal(err)
	}
	if got.Code != want.Code || got.CodeHash != want.CodeHash || !got.CreatedAt.Equal(want.CreatedAt) ||
		got.Secrets["API_KEY"] != "k-persist" || got.Params["n"] != 1.0 || got.Token != want.Token {
		t.Fatalf("after reopen: %+v", got)
	}
}

func TestSecretsNeverStoredInPlainText(t *testing.T) {
	bothDialects(t, testSecretsNeverStoredInPlainText)
}

func testSecretsNeverStoredInPlainText(t *testing.T) {
	const secret = "s3cr3t-VALUE-8f2a"
	const marker = "code-MARKER-77c1"
	e := newEnv(t)
	s := e.open(t)
	ctx := context.Background()
	w := sample("c", "sec")
	w.Code = "// " + marker
	w.Secrets = map[string]any{"PASSWORD": secret, "nested": map[string]any{"x": secret}}
	if _, err := s.PutWebtask(ctx, w); err != nil {
		t.Fatal(err)
	}
	check := func(when string) { t.Helper(); assertNotStored(t, e, when, secret, marker) }
	check("while open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check("after close")

	s2 := e.open(t)
	defer s2.Close()
	got, err := s2.GetWebtask(ctx, "c", "sec")
	if err != nil {
		t.Fatal(err)
	}
	if got.Secrets["PASSWORD"] != secret || got.Secrets["nested"].(map[string]any)["x"] != secret {
		t.Fatalf("secrets = %v", got.Secrets)
	}
	// The sealed blob is bound to its row: moved to another name, it fails.
	if _, err := s2.PutWebtask(ctx, sample("c", "other")); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.db.ExecContext(context.Background(), `UPDATE webtasks SET secrets_sealed = (SELECT secrets_sealed FROM webtasks WHERE name = 'sec'),
		secrets_kid = (SELECT secrets_kid FROM webtasks WHERE name = 'sec') WHERE name = 'other'`); err != nil {
		t.Fatal(err)
	}
	s2.invalidate("c", "other")
	if _, err := s2.GetWebtask(ctx, "c", "other"); !errors.Is(err, keyring.ErrUnseal) {
		t.Fatalf("moved sealed secrets: err = %v, want ErrUnseal", err)
	}
}

func TestSecretsSurviveRotation(t *testing.T) { bothDialects(t, testSecretsSurviveRotation) }

func testSecretsSurviveRotation(t *testing.T) {
	e, s := openTestEnv(t)
	ctx := context.Background()
	oldKid := e.ring.Current().ID
	if _, err := s.PutWebtask(ctx, sample("c", "n")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	s.invalidate("c", "n")
	w, err := s.GetWebtask(ctx, "c", "n")
	if err != nil || w.Secrets["API_KEY"] != "k-n" {
		t.Fatalf("after rotate: %v, %v", w, err)
	}
	if err := e.ring.Retire(oldKid); err != nil {
		t.Fatal(err)
	}
	s.invalidate("c", "n")
	if _, err := s.GetWebtask(ctx, "c", "n"); !errors.Is(err, keyring.ErrUnknownKey) {
		t.Fatalf("after retire: err = %v, want ErrUnknownKey", err)
	}
}

func TestCacheServesWarmReadsAndInvalidates(t *testing.T) {
	bothDialects(t, testCacheServesWarmReadsAndInvalidates)
}

func testCacheServesWarmReadsAndInvalidates(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if _, err := s.PutWebtask(ctx, sample("c", "n")); err != nil {
		t.Fatal(err)
	}
	a, err := s.GetWebtask(ctx, "c", "n")
	if err != nil {
		t.Fatal(err)
	}
	// Remove the row behind the store's back: a warm Get must not notice.
	if _, err := s.db.ExecContext(context.Background(), "DELETE FROM webtasks"); err != nil {
		t.Fatal(err)
	}
	b, err := s.GetWebtask(ctx, "c", "n")
	if err != nil {
		t.Fatalf("warm Get touched the disk: %v", err)
	}
	if a != b {
		t.Fatal("warm Get returned a different pointer")
	}
	// Put replaces the cached copy.
	w := sample("c", "n")
	w.Code = "v2"
	if _, err := s.PutWebtask(ctx, w); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetWebtask(ctx, "c", "n"); err != nil || got.Code != "v2" {
		t.Fatalf("after put: %v, %v", got, err)
	}
	// Delete invalidates.
	if err := s.DeleteWebtask(ctx, "c", "n"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetWebtask(ctx, "c", "n"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	// A cold Get fills the cache.
	if _, err := s.PutWebtask(ctx, sample("c", "m")); err != nil {
		t.Fatal(err)
	}
	s.invalidate("c", "m")
	if _, err := s.GetWebtask(ctx, "c", "m"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(context.Background(), "DELETE FROM webtasks"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetWebtask(ctx, "c", "m"); err != nil {
		t.Fatalf("cold Get did not fill the cache: %v", err)
	}
}

func TestWebtaskDataCascade(t *testing.T) { bothDialects(t, testWebtaskDataCascade) }

func testWebtaskDataCascade(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if _, err := s.db.ExecContext(context.Background(), "INSERT INTO webtask_data (container, name, data, etag, updated_at) VALUES ('c','ghost','{}','e',0)"); err == nil {
		t.Fatal("insert of webtask_data for a missing webtask succeeded: foreign keys are off")
	}
	if _, err := s.PutWebtask(ctx, sample("c", "n")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(context.Background(), "INSERT INTO webtask_data (container, name, data, etag, updated_at) VALUES ('c','n','{}','e',0)"); err != nil {
		t.Fatal(err)
	}
	// Upsert must not cascade-delete the data (ON CONFLICT DO UPDATE, not REPLACE).
	if _, err := s.PutWebtask(ctx, sample("c", "n")); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM webtask_data").Scan(&n); err != nil || n != 1 {
		t.Fatalf("data rows after upsert = %d, %v", n, err)
	}
	if err := s.DeleteWebtask(ctx, "c", "n"); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM webtask_data").Scan(&n); err != nil || n != 0 {
		t.Fatalf("data rows after delete = %d, %v", n, err)
	}
}

func TestConcurrentGetPut(t *testing.T) { bothDialects(t, testConcurrentGetPut) }

func testConcurrentGetPut(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	const names = 4
	for i := 0; i < names; i++ {
		if _, err := s.PutWebtask(ctx, sample("c", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errc := make(chan error, 100)
	for g := 0; g < 4; g++ {
		wg.Add(2)
		go func() { // writer
			defer wg.Done()
			for j := 0; j < 50; j++ {
				w := sample("c", fmt.Sprint(j%names))
				w.Code = fmt.Sprintf("v%d-%d", g, j)
				if _, err := s.PutWebtask(ctx, w); err != nil {
					errc <- err
					return
				}
			}
		}()
		go func() { // reader
			defer wg.Done()
			for j := 0; j < 200; j++ {
				w, err := s.GetWebtask(ctx, "c", fmt.Sprint(j%names))
				if err != nil {
					errc <- err
					return
				}
				_ = w.Secrets["API_KEY"]
				_ = w.Code
				if j%50 == 0 {
					if _, err := s.ListWebtasks(ctx, ListOptions{Container: "c"}); err != nil {
						errc <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	// After the dust settles the cache agrees with the disk.
	for i := 0; i < names; i++ {
		cached, err := s.GetWebtask(ctx, "c", fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		var code string
		if err := s.db.QueryRowContext(context.Background(), "SELECT code FROM webtasks WHERE container='c' AND name=?", fmt.Sprint(i)).Scan(&code); err != nil {
			t.Fatal(err)
		}
		if cached.Code != code {
			t.Fatalf("%d: cache has %q, disk has %q", i, cached.Code, code)
		}
	}
}

func TestCloneIsDeep(t *testing.T) {
	w := sample("c", "n")
	w.Params["obj"] = map[string]any{"k": "v"}
	c := w.Clone()
	c.Meta["team"] = "changed"
	c.Params["obj"].(map[string]any)["k"] = "changed"
	c.Secrets["API_KEY"] = "changed"
	if w.Meta["team"] != "a" || w.Params["obj"].(map[string]any)["k"] != "v" || w.Secrets["API_KEY"] != "k-n" {
		t.Fatal("Clone shares maps with the original")
	}
}

// A read that started before a write must not put what it read into the
// cache after the write (the race between a cold Get and a Put).
func TestStaleFillDropped(t *testing.T) { bothDialects(t, testStaleFillDropped) }

func testStaleFillDropped(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	old, err := s.PutWebtask(ctx, sample("c", "n"))
	if err != nil {
		t.Fatal(err)
	}
	s.invalidate("c", "n")
	s.cacheMu.RLock()
	gen := s.gen // a cold Get observes gen, then reads the old row...
	s.cacheMu.RUnlock()
	w := sample("c", "n")
	w.Code = "new"
	if _, err := s.PutWebtask(ctx, w); err != nil { // ...a Put commits...
		t.Fatal(err)
	}
	s.fill(cacheKey{"c", "n"}, old, gen) // ...and the Get tries to cache the old row.
	got, err := s.GetWebtask(ctx, "c", "n")
	if err != nil || got.Code != "new" {
		t.Fatalf("Get = %v, %v; stale fill won", got, err)
	}
}

// assertNotInDBFiles fails if any database file in dir (db, -wal, -shm)
// holds plain; control must be found in them (proof that the search sees
// plain text at all).
func assertNotStored(t *testing.T, e *env, when, plain, control string) {
	t.Helper()
	all := e.storedText(t)
	if bytes.Contains(all, []byte(plain)) {
		t.Fatalf("%s: plaintext secret found in the stored database", when)
	}
	if !bytes.Contains(all, []byte(control)) {
		t.Fatalf("%s: control marker not found in the stored database; the check proves nothing", when)
	}
}
