package clientstest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/daemon"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

func TestMain(m *testing.M) { RunTests(m, "real-client") }

// stampFile, inside node_modules, records the sha256 of the
// package-lock.json that `npm ci` installed, so later runs skip npm.
const stampFile = ".webtaskd-lock-sha256"

// npmTimeout bounds `npm ci` (about 35 s with a warm network).
const npmTimeout = 10 * time.Minute

var (
	npmOnce sync.Once
	npmErr  error
)

// nodeModules installs the pinned clients (npm ci) unless node_modules
// already matches package-lock.json, and returns its absolute path.
// WEBTASKD_SKIP_CLIENT_TESTS=1 skips (loudly) instead.
func nodeModules(t *testing.T) string {
	t.Helper()
	if os.Getenv("WEBTASKD_SKIP_CLIENT_TESTS") == "1" {
		t.Skip("SKIPPED: WEBTASKD_SKIP_CLIENT_TESTS=1: the real wt-cli/sandboxjs tests do not run")
	}
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	npmOnce.Do(func() { npmErr = npmCI(dir) })
	if npmErr != nil {
		t.Fatalf("installing the pinned clients: %v", npmErr)
	}
	return filepath.Join(dir, "node_modules")
}

func npmCI(dir string) error {
	for _, bin := range []string{"node", "npm"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s is not on PATH (make test installs it: scripts/install-deps.sh)", bin)
		}
	}
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(dir, "node_modules", stampFile)
	if got, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(got)) == want {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_UPDATE_NOTIFIER=1", "npm_config_update_notifier=false")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm ci: %w\n%s", err, out)
	}
	return os.WriteFile(stamp, []byte(want+"\n"), 0o644)
}

// startDaemon starts a daemon whose sandboxes see modules (a node_modules
// directory; "" for none).
func startDaemon(t *testing.T, modules string) (*Env, daemon.Config) {
	t.Helper()
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.Rootfs.ModulesDir = modules
	cfg.Sandbox.PoolSize = 0
	return Start(t, cfg), cfg
}

// tenantToken issues, with the master token, a token for container that
// may issue one level further (what a platform hands to a user).
func tenantToken(t *testing.T, env *Env, container string) string {
	t.Helper()
	r := env.Call("POST", "/api/tokens/issue", env.Master, map[string]any{"ten": container, "dd": 1})
	MustStatus(t, r, 200, "issue tenant token")
	return strings.TrimSpace(string(r.Body))
}

// wt runs wt-cli commands with a fresh HOME.
type wt struct {
	t       *testing.T
	modules string
	home    string
	dir     string // working directory (webtask sources)
}

func newWT(t *testing.T, modules string) *wt {
	home := t.TempDir()
	return &wt{t: t, modules: modules, home: home, dir: t.TempDir()}
}

// ansi matches the colour escapes wt prints (chalk ignores NO_COLOR).
var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// jwtRe matches tokens, kept out of the test log.
var jwtRe = regexp.MustCompile(`eyJ[\w-]+\.[\w-]+\.[\w-]+`)

func redact(s string) string { return jwtRe.ReplaceAllString(s, "<jwt>") }

// wtTimeout bounds one wt command.
const wtTimeout = 90 * time.Second

func (w *wt) env() []string {
	return append(os.Environ(), "HOME="+w.home, "NO_UPDATE_NOTIFIER=1", "NO_COLOR=1", "FORCE_COLOR=0")
}

// run runs `wt args...` and returns its output and exit code.
func (w *wt) run(args ...string) (string, int) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wtTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(w.modules, "wt-cli", "bin", "wt")}, args...)...)
	cmd.Dir = w.dir
	cmd.Env = w.env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		w.t.Fatalf("wt %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		w.t.Fatalf("wt %s: timed out after %s\n%s", strings.Join(args, " "), wtTimeout, out.String())
	}
	text := ansi.ReplaceAllString(out.String(), "")
	w.t.Logf("$ wt %s  (exit %d)\n%s", redact(strings.Join(args, " ")), code, redact(text))
	return text, code
}

// must runs wt and fails the test unless it exits 0.
func (w *wt) must(args ...string) string {
	w.t.Helper()
	out, code := w.run(args...)
	if code != 0 {
		w.t.Fatalf("wt %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// write puts a webtask source file in the working directory.
func (w *wt) write(name, code string) string {
	w.t.Helper()
	p := filepath.Join(w.dir, name)
	if err := os.WriteFile(p, []byte(code), 0o644); err != nil {
		w.t.Fatal(err)
	}
	return p
}

// lineStream runs a long-lived command and delivers its output lines.
type lineStream struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
}

func (w *wt) start(args ...string) *lineStream {
	w.t.Helper()
	cmd := exec.Command("node", append([]string{filepath.Join(w.modules, "wt-cli", "bin", "wt")}, args...)...)
	cmd.Dir = w.dir
	cmd.Env = w.env()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	ls := &lineStream{cmd: cmd, lines: make(chan string, 4096), done: make(chan struct{})}
	go func() { // owner: the command; ends when its output closes
		defer close(ls.lines)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case ls.lines <- ansi.ReplaceAllString(sc.Text(), ""):
			default: // the test stopped reading; never block the reader
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(ls.done)
	}()
	w.t.Cleanup(func() { ls.stop(w.t) })
	return ls
}

// waitLine waits (bounded) for a line containing want; it returns the time
// it arrived.
func (ls *lineStream) waitLine(t *testing.T, want string, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-ls.lines:
			if !ok {
				t.Fatalf("the command ended before printing %q", want)
			}
			t.Logf("| %s", redact(l))
			if strings.Contains(l, want) {
				return time.Now()
			}
		case <-deadline.C:
			t.Fatalf("no line containing %q within %s", want, timeout)
		}
	}
}

func (ls *lineStream) stop(t *testing.T) {
	if ls.cmd.Process != nil {
		_ = ls.cmd.Process.Kill()
	}
	select {
	case <-ls.done:
	case <-time.After(10 * time.Second):
		t.Errorf("wt process %d did not exit after SIGKILL", ls.cmd.Process.Pid)
	}
}
