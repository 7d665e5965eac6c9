package daemon_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/daemon"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// wantModes checks the modes of the data directory's files.
func wantModes(t *testing.T, dataDir string) {
	t.Helper()
	db := filepath.Join(dataDir, daemon.DatabaseFile)
	for p, want := range map[string]os.FileMode{
		dataDir: 0o700, filepath.Join(dataDir, daemon.KeysDir): 0o700,
		db: 0o600, db + "-wal": 0o600, db + "-shm": 0o600,
		filepath.Join(dataDir, daemon.MasterTokenFile): 0o600,
	} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %#o, want %#o", p, got, want)
		}
	}
}

// Acceptance 5: the data directory's modes, and a lost keys directory.
func TestDataDirModesAndLostKeySets(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 0
	env := Start(t, cfg)
	env.PutWebtask("keys", "sealed", helloCode, map[string]string{"K": "v"})
	wantModes(t, cfg.DataDir)
	env.Stop()

	// A tree left wide by an older version or a umask of 022 is tightened.
	db := filepath.Join(cfg.DataDir, daemon.DatabaseFile)
	keysDir := filepath.Join(cfg.DataDir, daemon.KeysDir)
	master := filepath.Join(cfg.DataDir, daemon.MasterTokenFile)
	for p, mode := range map[string]os.FileMode{cfg.DataDir: 0o755, keysDir: 0o755, db: 0o644, master: 0o644} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	env = Start(t, cfg)
	wantModes(t, cfg.DataDir)
	MustStatus(t, env.Call("GET", "/api/webtask/keys/sealed", env.Master, nil), 200, "get the sealed webtask")
	env.Stop()

	// The keys directory is lost: the daemon refuses to start, names the
	// key sets the database needs, and creates nothing.
	des, err := os.ReadDir(keysDir)
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, de := range des {
		if kid, ok := strings.CutSuffix(de.Name(), ".json"); ok {
			kids = append(kids, kid)
		}
	}
	if len(kids) == 0 {
		t.Fatal("no key set file in the keys directory")
	}
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(keysDir); err != nil {
		t.Fatal(err)
	}
	d := daemon.New(cfg, Logger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = d.Open(ctx)
	if err == nil {
		d.Close(ctx)
		t.Fatal("the daemon started without the key sets its database uses")
	}
	for _, kid := range kids {
		if !strings.Contains(err.Error(), kid) {
			t.Errorf("error does not name key set %s: %v", kid, err)
		}
	}
	if _, serr := os.Stat(keysDir); !os.IsNotExist(serr) {
		t.Errorf("the refused start created the keys directory again (%v)", serr)
	}
	after, rerr := os.ReadFile(db)
	if rerr != nil || !bytes.Equal(before, after) {
		t.Errorf("the refused start changed the database (%v)", rerr)
	}
	t.Logf("refused as wanted: %v", err)
}
