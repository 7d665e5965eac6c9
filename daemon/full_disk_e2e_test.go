package daemon_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	_ "github.com/mattn/go-sqlite3"

	"github.com/webtaskd/webtaskd/daemon"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// Acceptance 6 through the API: a 2 MiB tmpfs data dir filled up answers
// 507 to writes and keeps answering reads; after space is freed writes
// work again without a restart, and the database is intact.
func TestFullDataVolumeAnswers507AndRecovers(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 0
	if err := syscall.Mount("tmpfs", cfg.DataDir, "tmpfs", 0, "size=2m,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(cfg.DataDir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	env := Start(t, cfg) // stopped (cleanup) before the unmount
	env.PutWebtask("full", "keep", helloCode, map[string]string{"K": "v"})
	filler := filepath.Join(cfg.DataDir, "filler")
	if err := os.WriteFile(filler, make([]byte, 512<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	code := "module.exports = cb => cb(null, 1); // " + strings.Repeat("x", 32<<10)
	stored := 1
	var full Response
	for i := 0; i < 200; i++ {
		r := env.Call("PUT", "/api/webtask/full/w"+strconv.Itoa(i), env.Master, map[string]any{"code": code})
		if r.Status != 200 {
			full = r
			break
		}
		stored++
	}
	wantErr(t, full, 507, "the daemon's storage is full: the change was not saved (reads keep working; retry when space is freed)", "PUT on a full volume")
	t.Logf("volume full after %d webtasks", stored)

	// Reads keep working.
	r := env.Call("GET", "/api/webtask/full?limit=100", env.Master, nil)
	MustStatus(t, r, 200, "list on a full volume")
	var items []struct{ Name string }
	r.JSON(t, &items)
	if len(items) != stored {
		t.Fatalf("listed %d webtasks on a full volume, want %d", len(items), stored)
	}
	MustStatus(t, env.Call("GET", "/api/webtask/full/keep?decrypt=true", env.Master, nil), 200, "get on a full volume")

	// Space comes back: writes work again, without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	MustStatus(t, env.Call("PUT", "/api/webtask/full/after", env.Master, map[string]any{"code": code}), 200, "PUT after space was freed")
	stored++
	env.Stop()

	db, err := sql.Open("sqlite3", "file:"+filepath.Join(cfg.DataDir, daemon.DatabaseFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	var n int
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q (%v)", check, err)
	}
	if err := db.QueryRow("SELECT count(*) FROM webtasks WHERE container = 'full'").Scan(&n); err != nil || n != stored {
		t.Fatalf("%d webtasks in the database (%v), want %d", n, err, stored)
	}
}
