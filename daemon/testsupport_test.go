package daemon_test

import (
	"bufio"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/daemon"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
	"github.com/webtaskd/webtaskd/sandbox/sandboxtest"
)

func slogToStderr() *slog.Logger { return slog.New(slog.NewTextHandler(os.Stderr, nil)) }

// callJSON sends one request (as env.Call), requires 200 and decodes the
// JSON answer.
func callJSON[T any](t *testing.T, env *Env, method, path, tok string, body any, header ...string) T {
	t.Helper()
	r := env.Call(method, path, tok, body, header...)
	MustStatus(t, r, 200, method+" "+path)
	var v T
	r.JSON(t, &v)
	return v
}

// startChildDaemon starts runChildDaemon in a child process on cfg's
// directories (env: more WEBTASKD_ settings) and waits, bounded, for it to
// serve. It returns the process (the caller kills it), the address and the
// master token.
func startChildDaemon(t *testing.T, cfg daemon.Config, env ...string) (*exec.Cmd, string, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(exe, "-test.run=^$")
	child.Env = append(os.Environ(),
		"WEBTASKD_TEST_CHILD_DAEMON=1",
		"WEBTASKD_LISTEN=127.0.0.1:0",
		"WEBTASKD_DATA_DIR="+cfg.DataDir,
		"WEBTASKD_STATE_DIR="+cfg.Sandbox.StateDir,
		"WEBTASKD_CGROUP_PARENT="+cfg.Sandbox.CgroupParent,
		"WEBTASKD_START_TIMEOUT="+cfg.Sandbox.StartTimeout.String(),
		"WEBTASKD_FREEZE_AFTER="+cfg.Sandbox.FreezeAfter.String(),
	)
	child.Env = append(child.Env, env...)
	child.Stderr = Writer{T: t}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- addr
			}
		}
	}()
	var addr string
	select {
	case addr = <-ready:
	case <-time.After(sandboxtest.Scale(60 * time.Second)):
		_ = child.Process.Kill()
		_ = child.Wait()
		t.Fatal("child daemon did not become ready")
	}
	master, err := os.ReadFile(filepath.Join(cfg.DataDir, daemon.MasterTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return child, addr, strings.TrimSpace(string(master))
}
