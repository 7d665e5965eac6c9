package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/webtaskd/webtaskd/daemon"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// written is one webtask a writer got acknowledged: its secret and its
// storage document; a cron job was acknowledged for it too.
type written struct {
	container, name, secret, doc string
}

// TestBackupWhileWritingRestoreElsewhere: a backup taken through wtctl while
// 4 clients write holds everything acknowledged before the backup request
// was sent, and no secret or key in clear; restored into a fresh data dir
// and served on another port, every such webtask runs with its secret, its
// storage and cron job are there, and the same master token works.
func TestBackupWhileWritingRestoreElsewhere(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 0
	a := Start(t, cfg)

	const code = `module.exports = (ctx, cb) => cb(null, { secret: ctx.secrets.S })`
	var (
		mu       sync.Mutex
		acked    []written
		secrets  []string // every secret ever sent, acknowledged or not
		stop     = make(chan struct{})
		enough   = make(chan struct{})
		enoughOK sync.Once
		wg       sync.WaitGroup
	)
	client := &http.Client{}
	send := func(method, path string, body any) error {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, a.Base+path, bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+a.Master)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s %s: %d", method, path, resp.StatusCode)
		}
		return nil
	}
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := fmt.Sprintf("bk%d", i)
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				w := written{container: c, name: fmt.Sprintf("w%d", k), secret: "s3cr3t-" + RandHex(12), doc: RandHex(8)}
				mu.Lock()
				secrets = append(secrets, w.secret)
				mu.Unlock()
				base := "/api/webtask/" + c + "/" + w.name
				if err := send("PUT", base, map[string]any{"code": code, "secrets": map[string]string{"S": w.secret}}); err != nil {
					t.Errorf("writer %d: %v", i, err)
					return
				}
				if err := send("PUT", base+"/data", map[string]any{"data": `{"doc":"` + w.doc + `"}`}); err != nil {
					t.Errorf("writer %d: %v", i, err)
					return
				}
				if err := send("PUT", "/api/cron/"+c+"/"+w.name, map[string]any{"schedule": "0 0 1 1 *"}); err != nil {
					t.Errorf("writer %d: %v", i, err)
					return
				}
				mu.Lock()
				acked = append(acked, w)
				if len(acked) >= 20 {
					enoughOK.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		}()
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()
	select {
	case <-enough:
	case <-writersDone: // every writer failed (and said why)
		t.Fatal("the writers stopped before 20 writes were acknowledged")
	}
	mu.Lock()
	before := append([]written(nil), acked...)
	mu.Unlock()

	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("a long backup passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "backup.wtbackup")
	out, err := wtctl(t, a, "backup", "--out", archive, "--passphrase-file", pass)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("wtctl backup: %v", err)
	}
	t.Logf("%s(%d webtasks acknowledged before the backup request)", out, len(before))

	// Nothing in clear: no secret, no key material, no token, no SQLite.
	raw, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	clear := append([]string{"SQLite format 3", a.Master, "signing_key", "sealing_key"}, secrets...)
	keyFiles, _ := filepath.Glob(filepath.Join(cfg.DataDir, "keys", "*.json"))
	for _, kf := range keyFiles {
		var ks struct{ SigningKey, SealingKey []byte }
		b, _ := os.ReadFile(kf)
		if err := json.Unmarshal(bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("signing_key"), []byte("SigningKey")), []byte("sealing_key"), []byte("SealingKey")), &ks); err != nil || len(ks.SealingKey) == 0 {
			t.Fatalf("key file %s: %v", kf, err)
		}
		clear = append(clear, string(ks.SigningKey), string(ks.SealingKey),
			base64.StdEncoding.EncodeToString(ks.SigningKey), base64.StdEncoding.EncodeToString(ks.SealingKey))
	}
	for _, s := range clear {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("the backup holds %.24q in clear", s)
		}
	}

	// Restore: a non-empty data dir is refused, a wrong passphrase too.
	if err := daemon.Restore(context.Background(), cfg.DataDir, []byte("a long backup passphrase"), bytes.NewReader(raw)); err == nil ||
		!strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into the live data dir: %v", err)
	}
	fresh := filepath.Join(t.TempDir(), "restored")
	if err := daemon.Restore(context.Background(), fresh, []byte("the wrong passphrase"), bytes.NewReader(raw)); err == nil {
		t.Fatal("restore with a wrong passphrase succeeded")
	}
	if err := daemon.Restore(context.Background(), fresh, []byte("a long backup passphrase"), bytes.NewReader(raw)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	cfgB := Config(t)
	cfgB.Sandbox.PoolSize = 0
	cfgB.DataDir = fresh
	b := Start(t, cfgB)
	if b.Base == a.Base {
		t.Fatal("the restored daemon serves on the same address")
	}
	if b.Master != a.Master {
		t.Errorf("the restored daemon has another master token")
	}
	for _, w := range before {
		base := "/api/webtask/" + w.container + "/" + w.name
		MustStatus(t, b.Call("GET", base, a.Master, nil), 200, "GET "+base+" on the restored daemon with the old master token")
		r := b.Call("GET", base+"/data", a.Master, nil)
		MustStatus(t, r, 200, "GET data")
		if !strings.Contains(string(r.Body), w.doc) {
			t.Errorf("%s storage = %s, want doc %s", base, r.Body, w.doc)
		}
		MustStatus(t, b.Call("GET", "/api/cron/"+w.container+"/"+w.name, a.Master, nil), 200, "GET cron job")
		r = b.Call("GET", "/api/run/"+w.container+"/"+w.name, "", nil)
		MustStatus(t, r, 200, "run "+base)
		if !strings.Contains(string(r.Body), w.secret) {
			t.Errorf("run %s = %s, want its secret", base, r.Body)
		}
	}
}
