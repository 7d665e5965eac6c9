package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/store/keyring"
)

// tmpfsDir mounts a tmpfs of sizeBytes on a fresh directory, unmounted when
// the test ends (after everything registered later, such as closing a
// store on it).
func tmpfsDir(t *testing.T, sizeBytes int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: this test mounts a tmpfs and needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(sizeBytes)+",mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// logVolume logs the free space of the volume and the sizes of the database
// and its WAL (for the reader of a failure).
func logVolume(t *testing.T, dir, what string) {
	var st syscall.Statfs_t
	syscall.Statfs(dir, &st)
	fi1, _ := os.Stat(filepath.Join(dir, "webtaskd.db"))
	fi2, _ := os.Stat(filepath.Join(dir, "webtaskd.db-wal"))
	var a, b int64
	if fi1 != nil {
		a = fi1.Size()
	}
	if fi2 != nil {
		b = fi2.Size()
	}
	t.Logf("%s: free %d KiB db %d KiB wal %d KiB", what, st.Bfree*uint64(st.Bsize)>>10, a>>10, b>>10)
}

func randomCode(t *testing.T, n int) string {
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "// " + hex.EncodeToString(b)
}

// Acceptance 6: a full data volume refuses writes with ErrNoSpace, keeps
// serving reads, takes writes again once space is freed, and the database
// is intact.
func TestFullDiskRefusesWritesThenRecovers(t *testing.T) {
	dir := tmpfsDir(t, 2<<20)
	ring, err := keyring.Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "webtaskd.db")
	open := func() *Store {
		s, err := Open(context.Background(), Options{Path: path, Ring: ring})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s := open()
	ctx := context.Background()

	// The WAL bounds are set on the connections.
	var limit, auto int
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_size_limit").Scan(&limit); err != nil || limit != journalSizeLimitBytes {
		t.Fatalf("journal_size_limit = %d (%v), want %d", limit, err, journalSizeLimitBytes)
	}
	if err := s.db.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&auto); err != nil || auto != walAutocheckpointPages {
		t.Fatalf("wal_autocheckpoint = %d (%v), want %d", auto, err, walAutocheckpointPages)
	}

	if _, err := s.PutWebtask(ctx, sample("c", "keep")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutData(ctx, "c", "keep", `{"n":1}`, PutDataOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	// A filler on the same volume, deleted later to give space back.
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 512<<10), 0o600); err != nil {
		t.Fatal(err)
	}

	// Fill the volume: 32 KiB webtasks until a write is refused (2 MiB
	// hold fewer than 64 of them).
	stored := 1
	var full error
	for i := 0; i < 200 && full == nil; i++ {
		w := sample("c", "w"+strconv.Itoa(i))
		w.Code = randomCode(t, 32<<10)
		if _, err := s.PutWebtask(ctx, w); err != nil {
			full = err
			break
		}
		stored++
	}
	if full == nil {
		t.Fatal("200 writes of 32 KiB fitted on a 2 MiB volume")
	}
	if !errors.Is(full, errdefs.ErrNoSpace) || full.Error() != errNoSpace.Error() {
		t.Fatalf("write on a full volume: %v, want errdefs.ErrNoSpace", full)
	}
	t.Logf("volume full after %d webtasks", stored)
	logVolume(t, dir, "full")
	// Other writes are refused the same way, and change nothing.
	if _, err := s.PutData(ctx, "c", "keep", `{"n":2,"pad":"`+randomCode(t, 256<<10)+`"}`, PutDataOptions{Force: true}); !errors.Is(err, errdefs.ErrNoSpace) {
		t.Fatalf("PutData on a full volume: %v, want ErrNoSpace", err)
	}

	// Reads keep working, from the database (not the cache).
	list, err := s.ListWebtasks(ctx, ListOptions{Container: "c", Limit: 1000})
	if err != nil || len(list) != stored {
		t.Fatalf("list on a full volume: %d webtasks (%v), want %d", len(list), err, stored)
	}
	if d, err := s.GetData(ctx, "c", "keep"); err != nil || d.Doc != `{"n":1}` {
		t.Fatalf("GetData on a full volume: %+v, %v", d, err)
	}

	// Space comes back: writes work again, without reopening.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	logVolume(t, dir, "freed")
	w := sample("c", "after")
	w.Code = randomCode(t, 32<<10)
	if _, err := s.PutWebtask(ctx, w); err != nil {
		t.Fatalf("write after space was freed: %v", err)
	}
	stored++
	logVolume(t, dir, "after")
	if _, err := s.PutData(ctx, "c", "keep", `{"n":3}`, PutDataOptions{Force: true}); err != nil {
		t.Fatalf("PutData after space was freed: %v", err)
	}
	if s.full.Load() {
		t.Fatal("the store still believes the volume is full")
	}

	// The database is intact, and holds every acknowledged write.
	s.Close()
	s = open()
	var check string
	if err := s.db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q (%v)", check, err)
	}
	if n, err := s.CountWebtasks(ctx); err != nil || n != stored {
		t.Fatalf("%d webtasks after reopening (%v), want %d", n, err, stored)
	}
	if d, err := s.GetData(ctx, "c", "keep"); err != nil || d.Doc != `{"n":3}` {
		t.Fatalf("data after reopening: %+v, %v", d, err)
	}
}
