package modules

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/keyring"
	"github.com/webtaskd/webtaskd/store/modules/modulestest"
)

// installWait bounds one test's wait for an install.
const installWait = 2 * time.Minute

var (
	tiny1  = modulestest.Package{Name: "wtd-tiny", Version: "1.0.0", Deps: map[string]string{"wtd-dep": "1.0.0"}, Files: map[string]string{"index.js": `module.exports = "tiny 1 " + require("wtd-dep");`}}
	tiny2  = modulestest.Package{Name: "wtd-tiny", Version: "2.0.0", Files: map[string]string{"index.js": `module.exports = "tiny 2";`}}
	dep1   = modulestest.Package{Name: "wtd-dep", Version: "1.0.0", Files: map[string]string{"index.js": `module.exports = "dep 1";`}}
	scoped = modulestest.Package{Name: "@wtd/scoped", Version: "1.0.0", Files: map[string]string{"index.js": `module.exports = "scoped";`}}
)

func spec(p modulestest.Package) types.ModuleSpec {
	return types.ModuleSpec{Name: p.Name, Version: p.Version}
}

func requireNPM(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("SKIPPED LOUDLY: no npm on PATH (make deps installs it)")
	}
}

// testEnv is a module store over a real SQLite store.
type testEnv struct {
	t   *testing.T
	st  *store.Store
	cfg Config
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	requireNPM(t)
	ring, err := keyring.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), store.Options{Path: filepath.Join(t.TempDir(), "wt.db"), Ring: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := Config{
		Dir:            filepath.Join(t.TempDir(), "modules"),
		InstallTimeout: installWait,
		UID:            DefaultInstallUID, GID: DefaultInstallUID,
		UserConfig: filepath.Join(t.TempDir(), "no-npmrc"),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if os.Geteuid() == 0 {
		var b [4]byte
		rand.Read(b[:])
		cfg.CgroupParent = "/webtaskd-test-modules-" + hex.EncodeToString(b[:])
	}
	return &testEnv{t: t, st: st, cfg: cfg}
}

// withRegistry points npm at r and nothing else.
func (e *testEnv) withRegistry(r *modulestest.Registry) {
	e.cfg.Env = append(e.cfg.Env, "npm_config_registry="+r.URL())
}

func (e *testEnv) open() *Manager {
	e.t.Helper()
	m, err := Open(context.Background(), e.cfg, e.st)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { m.Close() })
	return m
}

func wait(t *testing.T, m *Manager, s types.ModuleSpec) *types.Module {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), installWait)
	defer cancel()
	r, err := m.Wait(ctx, s)
	if err != nil {
		t.Fatalf("waiting for %s: %v", s, err)
	}
	return r
}

func readModuleFile(t *testing.T, m *Manager, s types.ModuleSpec, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m.Path(s), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestValidate(t *testing.T) {
	for _, s := range []types.ModuleSpec{
		{Name: "lodash", Version: "4.17.21"}, {Name: "@webtask/cron-auth-middleware", Version: "1.2.0"}, {Name: "a.b-c_d", Version: "0.0.1-beta.1+build.5"},
	} {
		if err := Validate(s); err != nil {
			t.Errorf("Validate(%s) = %v", s, err)
		}
	}
	for _, s := range []types.ModuleSpec{
		{Name: "Lodash", Version: "4.17.21"}, {Name: "../x", Version: "1.0.0"}, {Name: "@scope", Version: "1.0.0"}, {Name: "@a/b/c", Version: "1.0.0"}, {Name: ".x", Version: "1.0.0"},
		{Name: "lodash", Version: "^4.17.21"}, {Name: "lodash", Version: "latest"}, {Name: "lodash", Version: "4.17"}, {Name: "lodash", Version: ""}, {Name: "", Version: "1.0.0"},
		{Name: strings.Repeat("a", 215), Version: "1.0.0"},
	} {
		if err := Validate(s); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Validate(%s) = %v, want ErrInvalid", s, err)
		}
	}
	many := make([]types.ModuleSpec, MaxPerRequest+1)
	for i := range many {
		many[i] = types.ModuleSpec{Name: fmt.Sprintf("m%d", i), Version: "1.0.0"}
	}
	if err := ValidateAll(many); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("ValidateAll(51 specs) = %v, want ErrInvalid", err)
	}
	if err := ValidateAll(many[:MaxPerRequest]); err != nil {
		t.Errorf("ValidateAll(50 specs) = %v", err)
	}
}

// TestProvisionFromMirror installs from a registry mirror on loopback (how
// an air-gapped host points npm at its mirror): queued, then available,
// each name@version in its own read-only tree with its dependencies, two
// versions of one package side by side, a scoped package.
func TestProvisionFromMirror(t *testing.T) {
	e := newTestEnv(t)
	reg := modulestest.NewRegistry(t, tiny1, tiny2, dep1, scoped)
	e.withRegistry(reg)
	m := e.open()
	specs := []types.ModuleSpec{spec(tiny1), spec(tiny2), spec(scoped)}
	got, err := m.Request(context.Background(), specs, false)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		if r.Name != specs[i].Name || r.Version != specs[i].Version || r.State != types.ModuleQueued {
			t.Fatalf("Request()[%d] = %+v, want %s queued", i, r, specs[i])
		}
	}
	for _, s := range specs {
		if r := wait(t, m, s); r.State != types.ModuleAvailable || r.Error != "" || r.SizeBytes <= 0 {
			t.Fatalf("%s after install: %+v, want available with a size", s, r)
		}
	}
	if got := readModuleFile(t, m, spec(tiny1), "wtd-tiny/index.js"); !strings.Contains(got, "tiny 1") {
		t.Errorf("wtd-tiny@1.0.0 index.js = %q", got)
	}
	if got := readModuleFile(t, m, spec(tiny1), "wtd-dep/index.js"); !strings.Contains(got, "dep 1") {
		t.Errorf("wtd-tiny@1.0.0's own dependency wtd-dep = %q", got)
	}
	if got := readModuleFile(t, m, spec(tiny2), "wtd-tiny/index.js"); !strings.Contains(got, "tiny 2") {
		t.Errorf("wtd-tiny@2.0.0 index.js = %q", got)
	}
	if _, err := os.Stat(filepath.Join(m.Path(spec(tiny2)), "wtd-dep")); !os.IsNotExist(err) {
		t.Errorf("wtd-tiny@2.0.0's tree holds wtd-tiny@1.0.0's dependency (stat: %v)", err)
	}
	if got := readModuleFile(t, m, spec(scoped), "@wtd/scoped/index.js"); !strings.Contains(got, "scoped") {
		t.Errorf("@wtd/scoped index.js = %q", got)
	}
	// Read-only: no write bit anywhere in a tree, and the trees are
	// content-addressed by name@version.
	root := filepath.Join(m.Dir(), Key(spec(tiny1)))
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode()&os.ModeSymlink == 0 && info.Mode().Perm()&0o222 != 0 {
			t.Errorf("%s is writable (%v)", p, info.Mode())
		}
		return nil
	})
	if os.Geteuid() == 0 {
		if f, err := os.OpenFile(filepath.Join(root, "node_modules", "wtd-tiny", "index.js"), os.O_WRONLY, 0); err == nil {
			f.Close()
			// root bypasses modes: the check above is what holds.
		}
	}
	// Requesting an available module again installs nothing.
	before := reg.Count("/-/" + tiny2.TarballName())
	got, err = m.Request(context.Background(), []types.ModuleSpec{spec(tiny2)}, false)
	if err != nil || got[0].State != types.ModuleAvailable {
		t.Fatalf("second Request = %+v, %v; want available", got, err)
	}
	if after := reg.Count("/-/" + tiny2.TarballName()); after != before {
		t.Errorf("an available module was fetched again (%d -> %d tarball requests)", before, after)
	}
	vs, err := m.Versions(context.Background(), "wtd-tiny")
	if err != nil || len(vs) != 2 || vs[0].Version != "1.0.0" || vs[1].Version != "2.0.0" {
		t.Fatalf("Versions(wtd-tiny) = %+v, %v", vs, err)
	}
}

// TestFailedInstallKeepsNPMMessageAndRetries: a package the registry does
// not have fails with npm's message; once published, a new request
// retries it.
func TestFailedInstallKeepsNPMMessageAndRetries(t *testing.T) {
	e := newTestEnv(t)
	reg := modulestest.NewRegistry(t)
	e.withRegistry(reg)
	m := e.open()
	s := spec(dep1)
	if _, err := m.Request(context.Background(), []types.ModuleSpec{s}, false); err != nil {
		t.Fatal(err)
	}
	r := wait(t, m, s)
	if r.State != types.ModuleFailed || !strings.Contains(r.Error, "404") || !strings.HasPrefix(r.Error, "npm: ") {
		t.Fatalf("missing package: %+v, want failed with npm's 404 message", r)
	}
	if strings.Contains(r.Error, "complete log") || strings.Contains(r.Error, os.TempDir()+"/webtaskd-npm-") {
		t.Errorf("the message leaks npm's private paths: %q", r.Error)
	}
	reg.Add(dep1)
	got, err := m.Request(context.Background(), []types.ModuleSpec{s}, false)
	if err != nil || got[0].State != types.ModuleQueued {
		t.Fatalf("retry Request = %+v, %v; want queued", got, err)
	}
	if r := wait(t, m, s); r.State != types.ModuleAvailable || r.Error != "" {
		t.Fatalf("retried install: %+v, want available", r)
	}
}

// TestConcurrentRequestsCoalesce: many simultaneous requests of one
// module run one install.
func TestConcurrentRequestsCoalesce(t *testing.T) {
	e := newTestEnv(t)
	reg := modulestest.NewRegistry(t, tiny2)
	e.withRegistry(reg)
	m := e.open()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := m.Request(context.Background(), []types.ModuleSpec{spec(tiny2)}, false)
			if err == nil && got[0].State == types.ModuleFailed {
				err = fmt.Errorf("state %s", got[0].State)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if r := wait(t, m, spec(tiny2)); r.State != types.ModuleAvailable {
		t.Fatalf("%+v", r)
	}
	if n := reg.Count("/-/" + tiny2.TarballName()); n != 1 {
		t.Errorf("the tarball was fetched %d times, want once (one install)", n)
	}
}

// TestRestartKeepsAvailableModules: a new Manager over the same store and
// directory keeps what is installed; an installed tree that vanished is
// reported failed.
func TestRestartKeepsAvailableModules(t *testing.T) {
	e := newTestEnv(t)
	reg := modulestest.NewRegistry(t, tiny2, dep1)
	e.withRegistry(reg)
	m := e.open()
	if _, err := m.Request(context.Background(), []types.ModuleSpec{spec(tiny2), spec(dep1)}, false); err != nil {
		t.Fatal(err)
	}
	wait(t, m, spec(tiny2))
	wait(t, m, spec(dep1))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := removeTree(filepath.Join(e.cfg.Dir, Key(spec(dep1)))); err != nil {
		t.Fatal(err)
	}
	m2 := e.open()
	r, err := m2.Wait(context.Background(), spec(tiny2))
	if err != nil || r.State != types.ModuleAvailable {
		t.Fatalf("after restart: %+v, %v; want available", r, err)
	}
	if got := readModuleFile(t, m2, spec(tiny2), "wtd-tiny/index.js"); !strings.Contains(got, "tiny 2") {
		t.Errorf("after restart index.js = %q", got)
	}
	if r, _ := m2.Wait(context.Background(), spec(dep1)); r == nil || r.State != types.ModuleFailed || !strings.Contains(r.Error, "missing") {
		t.Fatalf("vanished tree after restart: %+v, want failed", r)
	}
	if n := reg.Count("/-/" + tiny2.TarballName()); n != 1 {
		t.Errorf("restart installed again (%d tarball fetches)", n)
	}
}

// TestOfflineTarballDirectory installs from a directory of npm pack
// tarballs with npm offline and its registry unreachable.
func TestOfflineTarballDirectory(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir() // 0700: only the daemon reads it
	for _, p := range []modulestest.Package{tiny2, scoped} {
		if err := os.WriteFile(filepath.Join(dir, p.TarballName()), p.Tarball(t), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.cfg.TarballDir = dir
	e.cfg.Env = []string{"npm_config_offline=true", "npm_config_registry=http://127.0.0.1:9/"}
	m := e.open()
	specs := []types.ModuleSpec{spec(tiny2), spec(scoped)}
	if _, err := m.Request(context.Background(), specs, false); err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if r := wait(t, m, s); r.State != types.ModuleAvailable {
			t.Fatalf("%s offline: %+v, want available", s, r)
		}
	}
	if got := readModuleFile(t, m, spec(scoped), "@wtd/scoped/index.js"); !strings.Contains(got, "scoped") {
		t.Errorf("@wtd/scoped = %q", got)
	}
	// Not in the directory and no registry: a failure with npm's message.
	miss := types.ModuleSpec{Name: "wtd-absent", Version: "1.0.0"}
	m.Request(context.Background(), []types.ModuleSpec{miss}, false)
	if r := wait(t, m, miss); r.State != types.ModuleFailed || !strings.Contains(r.Error, "npm: ") {
		t.Fatalf("absent offline: %+v, want failed with npm's message", r)
	}
}

// TestStoreBound: an install that would pass MaxStoreBytes fails.
func TestStoreBound(t *testing.T) {
	e := newTestEnv(t)
	reg := modulestest.NewRegistry(t, tiny2)
	e.withRegistry(reg)
	e.cfg.MaxStoreBytes = 1
	m := e.open()
	m.Request(context.Background(), []types.ModuleSpec{spec(tiny2)}, false)
	if r := wait(t, m, spec(tiny2)); r.State != types.ModuleFailed || !strings.Contains(r.Error, "--modules-max-bytes") {
		t.Fatalf("%+v, want failed: store full", r)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.Dir, Key(spec(tiny2)))); !os.IsNotExist(err) {
		t.Errorf("a refused install left its tree (stat: %v)", err)
	}
}

// TestScriptsOffUnlessAllowed: lifecycle scripts run only for allow-listed
// packages, and (as root) as the unprivileged install user.
func TestScriptsOffUnlessAllowed(t *testing.T) {
	script := modulestest.Package{Name: "wtd-script", Version: "1.0.0", Files: map[string]string{"index.js": `module.exports = 1;`},
		Scripts: map[string]string{"postinstall": `node -e "require('fs').writeFileSync('ran', String(process.getuid()))"`}}
	other := script
	other.Name = "wtd-script-other"
	e := newTestEnv(t)
	reg := modulestest.NewRegistry(t, script, other)
	e.withRegistry(reg)
	e.cfg.AllowScripts = []string{"wtd-script"}
	m := e.open()
	m.Request(context.Background(), []types.ModuleSpec{spec(script), spec(other)}, false)
	for _, s := range []types.ModuleSpec{spec(script), spec(other)} {
		if r := wait(t, m, s); r.State != types.ModuleAvailable {
			t.Fatalf("%s: %+v", s, r)
		}
	}
	if _, err := os.Stat(filepath.Join(m.Path(spec(other)), "wtd-script-other", "ran")); !os.IsNotExist(err) {
		t.Errorf("the script of a package not allow-listed ran (stat: %v)", err)
	}
	uid := readModuleFile(t, m, spec(script), "wtd-script/ran")
	if os.Geteuid() != 0 {
		t.Log("not root: npm runs as the daemon's user; the uid check is SKIPPED")
		return
	}
	if uid != fmt.Sprint(DefaultInstallUID) {
		t.Errorf("the allowed script ran as uid %s, want the install user %d", uid, DefaultInstallUID)
	}
}

// TestRemoveAndReset: Remove deletes files and record; a reset request
// installs again.
func TestRemoveAndReset(t *testing.T) {
	e := newTestEnv(t)
	reg := modulestest.NewRegistry(t, tiny2)
	e.withRegistry(reg)
	m := e.open()
	s := spec(tiny2)
	m.Request(context.Background(), []types.ModuleSpec{s}, false)
	wait(t, m, s)
	got, err := m.Request(context.Background(), []types.ModuleSpec{s}, true)
	if err != nil || got[0].State != types.ModuleQueued {
		t.Fatalf("reset: %+v, %v; want queued", got, err)
	}
	if r := wait(t, m, s); r.State != types.ModuleAvailable {
		t.Fatalf("after reset: %+v", r)
	}
	if n := reg.Count("/-/" + tiny2.TarballName()); n != 2 {
		t.Errorf("reset fetched the tarball %d times in all, want 2", n)
	}
	if err := m.Remove(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.Dir, Key(s))); !os.IsNotExist(err) {
		t.Errorf("Remove left the tree (stat: %v)", err)
	}
	if err := m.Remove(context.Background(), s); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second Remove = %v, want ErrNotFound", err)
	}
}

// TestInstallFromConfiguredRegistry installs a real package with the
// host's npm configuration; it needs the registry and skips loudly when
// it is unreachable.
func TestInstallFromConfiguredRegistry(t *testing.T) {
	e := newTestEnv(t)
	modulestest.RequireNpmRegistry(t, "is-number")
	e.cfg.UserConfig = ""
	m := e.open()
	s := types.ModuleSpec{Name: "is-number", Version: "7.0.0"}
	m.Request(context.Background(), []types.ModuleSpec{s}, false)
	if r := wait(t, m, s); r.State != types.ModuleAvailable {
		t.Fatalf("is-number@7.0.0: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(m.Path(s), "is-number", "index.js")); err != nil {
		t.Fatal(err)
	}
}

// TestCopyTreeNeverFollowsLinks: what the install user leaves behind is
// copied as it is: a link stays a link (never the file it points at), a
// linked root is refused, and a package reached through a link does not
// count as installed.
func TestCopyTreeNeverFollowsLinks(t *testing.T) {
	src, outside := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(src, "pkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(src, "pkg", "index.js")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(src, "linked")); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy")
	if err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(dst, "pkg", "index.js")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("a link was not copied as a link: %v %v", fi, err)
	}
	if fi, err := os.Lstat(filepath.Join(dst, "linked")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("a linked directory was followed, not copied as a link: %v %v", fi, err)
	}
	if err := copyTree(filepath.Join(src, "linked"), filepath.Join(t.TempDir(), "c2")); err == nil {
		t.Fatal("a linked root was copied")
	}
	if err := os.WriteFile(filepath.Join(outside, "package.json"), []byte(`{"name":"linked","version":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkInstalled(src, types.ModuleSpec{Name: "linked", Version: "1.0.0"}); err == nil {
		t.Fatal("a package reached through a link counts as installed")
	}
}
