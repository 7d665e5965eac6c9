package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/store/backup"
	"github.com/webtaskd/webtaskd/store/pgtest"
)

// PostgreSQL-only tests: what only a shared store does (several stores on
// one database, the change feed, key sets in the database).

// pgEnv is a fresh database and KEK with no store opened yet.
func pgEnv(t *testing.T) *env {
	t.Helper()
	kek := make([]byte, 32)
	for i := range kek {
		kek[i] = byte(i*7 + 1)
	}
	return &env{dir: t.TempDir(), clock: &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)},
		dsn: pgtest.NewDatabase(t), kek: kek}
}

// openPG opens a store of e with its own key ring (the database's), as a
// daemon does.
func openPG(t *testing.T, e *env) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{DSN: e.dsn, KEK: e.kek, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestPostgresConcurrentFirstStarts: three stores opened at once on an
// empty database all succeed, with one migration history and one key set.
func TestPostgresConcurrentFirstStarts(t *testing.T) {
	e := pgEnv(t)
	const n = 3
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(context.Background(), Options{DSN: e.dsn, KEK: e.kek, Now: e.clock.Now})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	ms, err := loadMigrations(postgresMigrations)
	if err != nil {
		t.Fatal(err)
	}
	var rows, maxV int
	if err := stores[0].db.QueryRowContext(context.Background(), `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&rows, &maxV); err != nil {
		t.Fatal(err)
	}
	if rows != len(ms) || maxV != ms[len(ms)-1].version {
		t.Fatalf("schema_migrations: %d rows up to %d, want %d up to %d", rows, maxV, len(ms), ms[len(ms)-1].version)
	}
	kid := stores[0].Ring().Current().ID
	for i, s := range stores {
		if got := s.Ring().Current().ID; got != kid || len(s.Ring().List()) != 1 {
			t.Fatalf("store %d: current kid %s of %d key sets, want %s of 1", i, got, len(s.Ring().List()), kid)
		}
	}
}

// TestPostgresStorageRacingWriters: clients of two stores increment one
// storage document by read-modify-write; every refused write is a
// conflict carrying the current document, and no increment is lost.
func TestPostgresStorageRacingWriters(t *testing.T) {
	e := pgEnv(t)
	a, b := openPG(t, e), openPG(t, e)
	ctx := context.Background()
	if _, err := a.PutWebtask(ctx, sample("c", "n")); err != nil {
		t.Fatal(err)
	}
	const clients, increments = 3, 60
	var wg sync.WaitGroup
	var mu sync.Mutex
	conflicts := 0
	for i := range clients {
		s := []*Store{a, b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			cur, err := s.GetData(ctx, "c", "n")
			for done := 0; done < increments; {
				if err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
				n := 0
				if cur.Doc != "" {
					n, _ = strconv.Atoi(cur.Doc)
				}
				next, perr := s.PutData(ctx, "c", "n", strconv.Itoa(n+1), PutDataOptions{ExpectEtag: cur.Etag})
				var ce *DataConflictError
				switch {
				case perr == nil:
					done++
					cur = next
					cur.Doc = strconv.Itoa(n + 1)
				case errors.As(perr, &ce) && errors.Is(perr, errdefs.ErrConflict):
					mu.Lock()
					conflicts++
					mu.Unlock()
					if ce.Current.Etag <= cur.Etag {
						t.Errorf("client %d: conflict carries etag %d, not newer than %d", i, ce.Current.Etag, cur.Etag)
						return
					}
					cur = ce.Current
				default:
					err = perr
				}
			}
		}()
	}
	wg.Wait()
	d, err := b.GetData(ctx, "c", "n")
	if err != nil || d.Doc != strconv.Itoa(clients*increments) {
		t.Fatalf("final document %+v, %v, want %d", d, err, clients*increments)
	}
	t.Logf("%d conflicts", conflicts)
}

// listenAll runs s.Listen until the test ends and sends what it reports on
// the returned channel; it returns once LISTEN is in place.
func listenAll(t *testing.T, s *Store) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan string, 100)
	done := make(chan error, 1)
	go func() { done <- s.Listen(ctx, func(kind, id string) { ch <- kind + ":" + id }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Listen: %v, want context.Canceled", err)
		}
	})
	expect(t, ch, ChangeListening+":")
	return ch
}

// expect waits (bounded) for want on ch, failing on anything else first.
func expect(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("change %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no change %q within 10s", want)
	}
}

// TestPostgresChangeFeed: writes on store A reach Listen on store B as
// kind:id (ids only), in commit order; B drops its cached copy on a webtask
// change and sees A's revocation after ReloadRevocations.
func TestPostgresChangeFeed(t *testing.T) {
	e := pgEnv(t)
	a, b := openPG(t, e), openPG(t, e)
	ch := listenAll(t, b)
	ctx := context.Background()
	w := sample("c", "n")
	if _, err := a.PutWebtask(ctx, w); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, "webtask:c/n")
	if got, err := b.GetWebtask(ctx, "c", "n"); err != nil || got.Code != w.Code {
		t.Fatalf("B reads %v, %v", got, err)
	}
	w.Code = "module.exports = cb => cb(null, 2)"
	if _, err := a.PutWebtask(ctx, w); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, "webtask:c/n")
	b.InvalidateWebtask("c", "n")
	if got, err := b.GetWebtask(ctx, "c", "n"); err != nil || got.Code != w.Code {
		t.Fatalf("B reads after invalidation %v, %v", got, err)
	}

	if err := a.Revoke(ctx, "jti-1", "by"); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, "revocation:jti-1")
	if err := b.ReloadRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	if revoked, _ := b.AnyRevoked([]string{"jti-1"}); !revoked {
		t.Fatal("B does not enforce A's revocation after ReloadRevocations")
	}
	if _, err := a.PutLimits(ctx, ContainerLimits{Container: "c"}); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, "limits:c")
	if _, err := a.PutCronJob(ctx, &CronJob{Container: "c", Name: "n", Schedule: "* * * * *", TZ: "UTC", State: CronActive}); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, "cron:c/n")
	if _, err := a.SetCronJobState(ctx, "c", "n", CronInactive); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, "cron:c/n")
	// A failed write announces nothing.
	if _, err := a.PutCronJob(ctx, &CronJob{Container: "c", Name: "missing", Schedule: "* * * * *", TZ: "UTC", State: CronActive}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cron job of a missing webtask: %v", err)
	}
	if err := a.DeleteWebtask(ctx, "c", "n"); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, "webtask:c/n")
	expect(t, ch, "cron:c/n")
	if _, err := a.Ring().Rotate(); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, "keys:"+a.Ring().Current().ID)
}

// TestPostgresListenReportsLostConnection: Listen returns an error (not
// ctx's) when its connection is terminated, so the caller reconnects.
func TestPostgresListenReportsLostConnection(t *testing.T) {
	e := pgEnv(t)
	s := openPG(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	listening := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Listen(ctx, func(kind, _ string) {
			if kind == ChangeListening {
				close(listening)
			}
		})
	}()
	select {
	case <-listening:
	case err := <-done:
		t.Fatalf("Listen: %v", err)
	}
	if _, err := s.db.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE query = 'LISTEN `+ChangeChannel+`' AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Listen after its connection was terminated: %v, want a connection error", err)
		}
	case <-ctx.Done():
		t.Fatal("Listen did not return after its connection was terminated")
	}
}

// TestPostgresKeySetsWrappedUnderKEK: the key_sets table holds no key in
// any encoding; another store (own ring) sees a rotation after
// ReloadKeys; a wrong KEK fails to open with ErrWrongKEK.
func TestPostgresKeySetsWrappedUnderKEK(t *testing.T) {
	e := pgEnv(t)
	a := openPG(t, e)
	b := openPG(t, e)
	ks, err := a.Ring().Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if b.Ring().Current().ID == ks.ID {
		t.Fatal("B saw the rotation before reloading: the test proves nothing")
	}
	if err := b.ReloadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := b.Ring().Current(); got.ID != ks.ID || !bytes.Equal(got.SealingKey, ks.SealingKey) {
		t.Fatalf("B's current key set after reload: %s, want %s", got.ID, ks.ID)
	}
	// Secrets sealed on A open on B.
	ctx := context.Background()
	if _, err := a.PutWebtask(ctx, sample("c", "n")); err != nil {
		t.Fatal(err)
	}
	if w, err := b.GetWebtask(ctx, "c", "n"); err != nil || w.Secrets["API_KEY"] != "k-n" {
		t.Fatalf("B reads A's secrets: %v, %v", w, err)
	}

	c, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var table string
	if err := c.QueryRow(ctx, `SELECT string_agg(k::text, E'\n') FROM key_sets k`).Scan(&table); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains([]byte(table), []byte(ks.ID)) {
		t.Fatal("the key_sets dump does not name the kid: the check proves nothing")
	}
	for _, set := range a.Ring().List() {
		full, _ := a.Ring().Get(set.ID)
		for _, key := range [][]byte{full.SigningKey, full.SealingKey} {
			for _, enc := range []string{string(key), hex.EncodeToString(key), base64.StdEncoding.EncodeToString(key),
				base64.RawURLEncoding.EncodeToString(key), base64.StdEncoding.EncodeToString(key)[:20]} {
				if bytes.Contains([]byte(table), []byte(enc)) {
					t.Fatalf("key material of %s found in the key_sets table", set.ID)
				}
			}
		}
	}

	wrong := append([]byte(nil), e.kek...)
	wrong[0] ^= 1
	_, err = Open(ctx, Options{DSN: e.dsn, KEK: wrong})
	if !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("open with a wrong KEK: %v, want ErrWrongKEK", err)
	}
	if _, err := Open(ctx, Options{DSN: e.dsn, KEK: e.kek[:16]}); err == nil {
		t.Fatal("open with a 16-byte KEK succeeded")
	}
}

// TestPostgresMasterToken: concurrent callers of several stores get one
// minted token; it is kept while valid and replaced when not; SQLite has
// none.
func TestPostgresMasterToken(t *testing.T) {
	e := pgEnv(t)
	stores := []*Store{openPG(t, e), openPG(t, e), openPG(t, e)}
	ctx := context.Background()
	var mu sync.Mutex
	mints := 0
	mint := func() (string, error) {
		mu.Lock()
		defer mu.Unlock()
		mints++
		return fmt.Sprintf("token-%d", mints), nil
	}
	valid := func(tok string) bool { return tok != "token-1-revoked" }
	toks := make([]string, 6)
	var wg sync.WaitGroup
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if toks[i], err = stores[i%3].MasterToken(ctx, valid, mint); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i, tok := range toks {
		if tok != "token-1" {
			t.Fatalf("caller %d got %q, want token-1 (one mint)", i, tok)
		}
	}
	// No longer valid: re-minted once, then kept.
	invalid := func(tok string) bool { return tok != "token-1" }
	if tok, err := stores[1].MasterToken(ctx, invalid, mint); err != nil || tok != "token-2" {
		t.Fatalf("after invalidation: %q, %v", tok, err)
	}
	if tok, err := stores[2].MasterToken(ctx, invalid, mint); err != nil || tok != "token-2" {
		t.Fatalf("kept: %q, %v", tok, err)
	}
	var sealed string
	if err := stores[0].db.QueryRowContext(ctx, `SELECT sealed FROM cluster_master`).Scan(&sealed); err != nil || bytes.Contains([]byte(sealed), []byte("token-2")) {
		t.Fatalf("cluster_master holds %q, %v: not sealed", sealed, err)
	}
	sq := openTestStore(t)
	if _, err := sq.MasterToken(ctx, valid, mint); !errors.Is(err, ErrNotShared) {
		t.Fatalf("SQLite MasterToken: %v, want ErrNotShared", err)
	}
}

// TestPostgresSnapshotRefused: a backup of a PostgreSQL store is refused
// with the error saying to use pg_dump plus the key-encryption key file.
func TestPostgresSnapshotRefused(t *testing.T) {
	s := openPG(t, pgEnv(t))
	err := s.Snapshot(context.Background(), t.TempDir()+"/snap.db")
	if !errors.Is(err, backup.ErrSharedStore) || !errors.Is(err, errdefs.ErrInvalid) ||
		!strings.Contains(err.Error(), "pg_dump") || !strings.Contains(err.Error(), "key-encryption key file") {
		t.Fatalf("Snapshot of a PostgreSQL store: %v", err)
	}
}

// TestPostgresModulesPerNode: module install state is per host: a record
// of node a is not node b's.
func TestPostgresModulesPerNode(t *testing.T) {
	e := pgEnv(t)
	ctx := context.Background()
	var stores [2]*Store
	for i, node := range []string{"a", "b"} {
		s, err := Open(ctx, Options{DSN: e.dsn, KEK: e.kek, NodeID: node})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	if _, err := stores[0].PutModule(ctx, types.Module{Name: "lodash", Version: "4.17.21", State: "available"}); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[1].GetModule(ctx, "lodash", "4.17.21"); !errors.Is(err, ErrModuleNotFound) {
		t.Fatalf("node b sees node a's module: %v", err)
	}
	if _, err := stores[1].PutModule(ctx, types.Module{Name: "lodash", Version: "4.17.21", State: "queued"}); err != nil {
		t.Fatal(err)
	}
	if m, err := stores[0].GetModule(ctx, "lodash", "4.17.21"); err != nil || m.State != "available" {
		t.Fatalf("node a's record: %+v, %v", m, err)
	}
	if err := stores[1].DeleteModule(ctx, "lodash", "4.17.21"); err != nil {
		t.Fatal(err)
	}
	if ms, err := stores[0].ListModules(ctx); err != nil || len(ms) != 1 {
		t.Fatalf("node a's list after b's delete: %+v, %v", ms, err)
	}
}

// TestPostgresRevocationsFromDB: with CheckRevocationsInDB on, a
// revocation made on another store is enforced before any reload.
func TestPostgresRevocationsFromDB(t *testing.T) {
	e := pgEnv(t)
	a, b := openPG(t, e), openPG(t, e)
	ctx := context.Background()
	if err := a.Revoke(ctx, "j1", ""); err != nil {
		t.Fatal(err)
	}
	if revoked, _ := b.AnyRevoked([]string{"x", "j1"}); revoked {
		t.Fatal("B's in-memory set already holds A's revocation: the test proves nothing")
	}
	b.CheckRevocationsInDB(true)
	if revoked, err := b.AnyRevoked([]string{"x", "j1"}); !revoked || err != nil {
		t.Fatalf("from the database: %v, %v", revoked, err)
	}
	if revoked, err := b.AnyRevoked([]string{"x"}); revoked || err != nil {
		t.Fatalf("unrevoked from the database: %v, %v", revoked, err)
	}
}
