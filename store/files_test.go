package store

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Fatalf("%s: mode %#o, want %#o", filepath.Base(path), got, want)
	}
}

func TestDatabaseFilesAre0600(t *testing.T) {
	e, s := openTestEnv(t)
	if _, err := s.PutWebtask(context.Background(), sample("c", "n")); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(e.dir, "webtaskd.db")
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		wantMode(t, p, 0o600)
	}
}

func TestOpenTightensLooseDatabaseFiles(t *testing.T) {
	e := newEnv(t)
	s := e.open(t)
	if _, err := s.PutWebtask(context.Background(), sample("c", "n")); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(e.dir, "webtaskd.db")
	// While open, the -wal and -shm exist: widen all three as an older
	// version (or a umask of 022) would have left them, then reopen.
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s2 := e.open(t)
	defer s2.Close()
	defer s.Close()
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		wantMode(t, p, 0o600)
	}
}

func TestReadKeyRefs(t *testing.T) {
	e := newEnv(t)
	db := filepath.Join(e.dir, "webtaskd.db")
	refs, err := ReadKeyRefs(context.Background(), db)
	if err != nil || len(refs.SealedKids)+len(refs.Tokens) != 0 {
		t.Fatalf("no database: %+v, %v", refs, err)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatalf("ReadKeyRefs created the database: %v", err)
	}
	s := e.open(t)
	defer s.Close()
	ctx := context.Background()
	w := sample("c", "a")
	w.Token = "tok.a"
	if _, err := s.PutWebtask(ctx, w); err != nil {
		t.Fatal(err)
	}
	w = sample("c", "b")
	w.Token = ""
	if _, err := s.PutWebtask(ctx, w); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutCronJob(ctx, &CronJob{Container: "c", Name: "a", Token: "tok.cron", Schedule: "* * * * *", State: CronActive}); err != nil {
		t.Fatal(err)
	}
	refs, err = ReadKeyRefs(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(refs.Tokens)
	if kid := e.ring.Current().ID; len(refs.SealedKids) != 1 || refs.SealedKids[0] != kid {
		t.Fatalf("sealed kids %q, want [%s]", refs.SealedKids, kid)
	}
	if strings.Join(refs.Tokens, ",") != "tok.a,tok.cron" {
		t.Fatalf("tokens %q", refs.Tokens)
	}
}
