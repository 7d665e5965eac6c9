package modules

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
)

// stagingPrefix names the store's directories of installs being sealed
// (<Dir>/.staging-*); Open removes the leftovers of a crash.
const stagingPrefix = ".staging-"

// sizeCheckInterval is how often an install's disk use is measured while
// npm runs.
const sizeCheckInterval = time.Second

// maxMessageBytes bounds the npm message kept of a failed install.
const maxMessageBytes = 2048

func lookNPM(npm string) (string, error) {
	if npm == "" {
		npm = "npm"
	}
	p, err := exec.LookPath(npm)
	if err != nil {
		return "", fmt.Errorf("modules: npm not found: %w", err)
	}
	return p, nil
}

// install runs npm for spec in a private work directory (owned by the
// install user), copies the result into the store without following any
// link the install made, seals it read-only and moves it to its place. It
// returns the tree's size. Errors are caller-facing (npm's message, or the
// bound that stopped it); they never carry the environment.
func (m *Manager) install(ctx context.Context, spec types.ModuleSpec) (int64, error) {
	work, err := os.MkdirTemp(m.cfg.WorkDir, "webtaskd-npm-")
	if err != nil {
		m.log.Error("preparing module install", "module", spec.String(), "err", err)
		return 0, fmt.Errorf("internal error preparing the install")
	}
	defer m.remove(work)
	if err := m.prepareWork(work, spec); err != nil {
		m.log.Error("preparing module install", "module", spec.String(), "err", err)
		return 0, fmt.Errorf("internal error preparing the install")
	}
	if err := m.runNPM(ctx, work, spec); err != nil {
		return 0, err
	}
	staging, err := os.MkdirTemp(m.cfg.Dir, stagingPrefix)
	if err != nil {
		m.log.Error("staging module install", "module", spec.String(), "err", err)
		return 0, fmt.Errorf("internal error staging the install")
	}
	defer m.remove(staging)
	tree := filepath.Join(staging, "node_modules")
	if err := copyTree(filepath.Join(work, "pkg", "node_modules"), tree); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("npm finished but %s is not installed", spec.Name)
		}
		m.log.Error("copying module tree", "module", spec.String(), "err", err)
		return 0, fmt.Errorf("internal error copying the install")
	}
	if err := checkInstalled(tree, spec); err != nil {
		return 0, err
	}
	size, err := treeSize(staging)
	if err != nil {
		return 0, fmt.Errorf("internal error measuring the install")
	}
	if m.cfg.MaxStoreBytes > 0 {
		used, err := m.storeBytes(ctx)
		if err != nil {
			return 0, fmt.Errorf("internal error measuring the module store")
		}
		if used+size > m.cfg.MaxStoreBytes {
			return 0, fmt.Errorf("the module store is full: %d bytes more would pass --modules-max-bytes (%d of %d bytes used)", size, used, m.cfg.MaxStoreBytes)
		}
	}
	if err := makeReadOnly(staging); err != nil {
		m.log.Error("sealing module tree", "module", spec.String(), "err", err)
		return 0, fmt.Errorf("internal error sealing the install")
	}
	final := filepath.Join(m.cfg.Dir, Key(spec))
	if err := removeTree(final); err != nil {
		return 0, fmt.Errorf("internal error replacing the old install")
	}
	if err := os.Rename(staging, final); err != nil {
		m.log.Error("moving module tree into the store", "module", spec.String(), "err", err)
		return 0, fmt.Errorf("internal error moving the install into the store")
	}
	return size, nil
}

// remove removes a work or staging directory, logging a failure.
func (m *Manager) remove(dir string) {
	if err := removeTree(dir); err != nil {
		m.log.Warn("removing module install directory", "dir", dir, "err", err)
	}
}

// prepareWork lays out work: home/ (npm's HOME, cache and npmrc), tmp/,
// pkg/ (the install prefix with a package.json naming spec) and tarball/
// (a copy of spec's TarballDir tarball, if any), all owned by
// the install user, like work itself (0700).
func (m *Manager) prepareWork(work string, spec types.ModuleSpec) error {
	for _, d := range []string{"home", "tmp", "pkg", "tarball"} {
		if err := os.Mkdir(filepath.Join(work, d), 0o700); err != nil {
			return err
		}
	}
	dep := spec.Version
	if tgz := m.tarball(spec); tgz != "" {
		// A copy npm can read whatever the directory's permissions.
		dst := filepath.Join(work, "tarball", filepath.Base(tgz))
		if err := copyFile(tgz, dst); err != nil {
			return err
		}
		dep = "file:" + dst
	}
	pkg, err := json.Marshal(map[string]any{
		"name": "webtaskd-module", "version": "0.0.0", "private": true,
		"dependencies": map[string]string{spec.Name: dep},
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "pkg", "package.json"), pkg, 0o600); err != nil {
		return err
	}
	if rc := m.userConfig(); rc != nil {
		if err := os.WriteFile(filepath.Join(work, "home", ".npmrc"), rc, 0o600); err != nil {
			return err
		}
	}
	return chownTree(work, m.cfg.UID, m.cfg.GID)
}

// tarball is spec's tarball in TarballDir ("" when none): npm pack's
// file name, <name>-<version>.tgz with a scope's @ dropped and / as -.
func (m *Manager) tarball(spec types.ModuleSpec) string {
	if m.cfg.TarballDir == "" {
		return ""
	}
	base := strings.ReplaceAll(strings.TrimPrefix(spec.Name, "@"), "/", "-") + "-" + spec.Version + ".tgz"
	p := filepath.Join(m.cfg.TarballDir, base)
	if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
		return ""
	}
	return p
}

// userConfig is the npmrc npm gets in its private HOME.
func (m *Manager) userConfig() []byte {
	p := m.cfg.UserConfig
	if p == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil
		}
		p = filepath.Join(home, ".npmrc")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	return b
}

// npmEnv is npm's environment: a PATH, the private HOME and TMPDIR, the
// daemon's npm and proxy configuration, then Config.Env.
func (m *Manager) npmEnv(work string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(work, "home"),
		"TMPDIR=" + filepath.Join(work, "tmp"),
		"npm_config_update_notifier=false",
		"npm_config_fund=false",
		"npm_config_audit=false",
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "npm_config_") || lk == "http_proxy" || lk == "https_proxy" || lk == "no_proxy" || k == "NODE_EXTRA_CA_CERTS" {
			env = append(env, kv)
		}
	}
	return append(env, m.cfg.Env...)
}

// runNPM runs `npm install` in work/pkg, confined and bounded.
func (m *Manager) runNPM(ctx context.Context, work string, spec types.ModuleSpec) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.InstallTimeout)
	defer cancel()
	args := []string{"install", "--omit=dev", "--no-package-lock", "--no-bin-links", "--no-audit", "--no-fund", "--loglevel=error"}
	if !m.scriptsAllowed(spec.Name) {
		args = append(args, "--ignore-scripts")
	}
	cmd := exec.CommandContext(ctx, m.npm, args...)
	cmd.Dir = filepath.Join(work, "pkg")
	cmd.Env = m.npmEnv(work)
	var stderr, stdout bytes.Buffer
	cmd.Stderr, cmd.Stdout = &limitedBuffer{b: &stderr, max: 64 << 10}, &limitedBuffer{b: &stdout, max: 64 << 10}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(m.cfg.UID), Gid: uint32(m.cfg.GID), Groups: []uint32{}}
	}
	cg, err := m.newInstallCgroup(spec)
	if err != nil {
		m.log.Error("module install cgroup", "module", spec.String(), "err", err)
		return fmt.Errorf("internal error confining the install")
	}
	defer cg.delete()
	cg.prepare(cmd.SysProcAttr)
	// Pdeathsig follows the thread that forked npm, not the process: keep
	// this goroutine on that thread until npm is reaped, or a thread the
	// runtime retires (after another goroutine's LockOSThread) kills it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd.Cancel = func() error {
		cg.kill()
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		m.log.Error("starting npm", "module", spec.String(), "err", err)
		return fmt.Errorf("internal error starting npm")
	}
	if err := cg.add(cmd.Process.Pid); err != nil {
		_ = cmd.Cancel()
		_ = cmd.Wait()
		m.log.Error("module install cgroup", "module", spec.String(), "err", err)
		return fmt.Errorf("internal error confining the install")
	}
	tooBig := make(chan int64, 1)
	stopWatch := m.watchSize(ctx, work, cancel, tooBig)
	err = cmd.Wait()
	stopWatch()
	// Whatever npm left behind in its process group goes with it.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case n := <-tooBig:
		return fmt.Errorf("the install passed its disk bound (%d bytes used, at most %d)", n, m.cfg.MaxInstallBytes)
	default:
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("npm did not finish within %s", m.cfg.InstallTimeout)
	}
	if cg.oomKilled() {
		return fmt.Errorf("npm ran out of memory (limit %d bytes)", m.cfg.InstallMemoryBytes)
	}
	if err != nil {
		if msg := npmMessage(stderr.String()); msg != "" {
			return errors.New(msg)
		}
		return fmt.Errorf("npm install failed: %v", err)
	}
	return nil
}

// watchSize measures work every sizeCheckInterval and cancels the install
// past MaxInstallBytes (the size goes to tooBig). The returned func stops it.
func (m *Manager) watchSize(ctx context.Context, work string, cancel context.CancelFunc, tooBig chan<- int64) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(sizeCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if n, err := treeSize(work); err == nil && n > m.cfg.MaxInstallBytes {
					tooBig <- n
					cancel()
					return
				}
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// npmMessage keeps npm's error lines ("npm error …", older "npm ERR! …"),
// without the pointer to its debug log (a private path), bounded.
func npmMessage(stderr string) string {
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		rest, ok := strings.CutPrefix(l, "npm error")
		if !ok {
			rest, ok = strings.CutPrefix(l, "npm ERR!")
		}
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		if rest == "" || strings.HasPrefix(rest, "A complete log of this run") || strings.HasPrefix(rest, "Log files were not written") {
			continue
		}
		lines = append(lines, rest)
	}
	msg := "npm: " + strings.Join(lines, "; ")
	if len(lines) == 0 {
		return ""
	}
	if len(msg) > maxMessageBytes {
		msg = msg[:maxMessageBytes] + "…"
	}
	return msg
}

// checkInstalled verifies that the node_modules tree holds spec's package
// at its version.
func checkInstalled(tree string, spec types.ModuleSpec) error {
	rel := spec.Name + "/package.json"
	if !noLinks(tree, rel) {
		return fmt.Errorf("npm finished but %s is not installed", spec.Name)
	}
	b, err := os.ReadFile(filepath.Join(tree, rel))
	if err != nil {
		return fmt.Errorf("npm finished but %s is not installed", spec.Name)
	}
	var pkg struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil || pkg.Name != spec.Name || pkg.Version != spec.Version {
		return fmt.Errorf("npm installed %s@%s, not %s", pkg.Name, pkg.Version, spec)
	}
	return nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		if len(p) > room {
			l.b.Write(p[:room])
		} else {
			l.b.Write(p)
		}
	}
	return len(p), nil
}
