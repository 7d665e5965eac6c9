package clustertest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/daemon"
	"github.com/webtaskd/webtaskd/daemon/daemontest"
	"github.com/webtaskd/webtaskd/sandbox"
	"github.com/webtaskd/webtaskd/sandbox/sandboxtest"
)

// ChildEnv makes the test binary, re-executed, a cluster member (ServeChild)
// instead of running tests.
const ChildEnv = "WEBTASKD_TEST_CLUSTER_CHILD"

// Child is the daemontest.RunTests role of a member process.
var Child = daemontest.Child{Env: ChildEnv, Run: ServeChild}

// ServeChild runs a daemon configured by the WEBTASKD_* environment, prints
// "READY <addr>" on stdout once it serves, and closes it on SIGTERM.
func ServeChild() int {
	cfg, err := daemontest.EnvConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := cfg.NewLogger(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	d := daemon.New(cfg, log)
	if err := d.Open(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 1
	}
	fmt.Printf("READY %s\n", d.Addr())
	<-ctx.Done()
	cctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := d.Close(cctx); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
		return 1
	}
	return 0
}

// Node is one member process of a test cluster. Its address, directories
// and cgroup parent stay the same across restarts.
type Node struct {
	ID           string
	Addr         string // host:port
	DataDir      string
	StateDir     string
	CgroupParent string
	env          []string
	logPath      string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exited
}

// URL is the member's own base URL.
func (n *Node) URL() string { return "http://" + n.Addr }

// start runs the member and waits until it serves.
func (n *Node) start(t testing.TB) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), ChildEnv+"=1")
	cmd.Env = append(cmd.Env, n.env...)
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "READY ") {
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	timeout := sandboxtest.Scale(60 * time.Second)
	select {
	case <-ready:
	case <-done:
		t.Fatalf("member %s exited before serving\n%s", n.ID, n.LogTail())
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("member %s not serving after %s\n%s", n.ID, timeout, n.LogTail())
	}
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
}

// Running reports whether the member process runs (not killed).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// Signal sends sig to the member process (SIGKILL, SIGSTOP, SIGCONT).
func (n *Node) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil {
		t.Fatalf("member %s is not running", n.ID)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to member %s: %v", sig, n.ID, err)
	}
}

// Kill SIGKILLs the member and waits for the process to be gone (its
// sandboxes stay, as after a crash: the next start sweeps them).
func (n *Node) Kill(t testing.TB) {
	t.Helper()
	n.Signal(t, syscall.SIGKILL)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("member %s still running 10s after SIGKILL", n.ID)
	}
	n.mu.Lock()
	n.cmd = nil
	n.mu.Unlock()
}

// Restart starts a killed member again, on the same address and dirs.
func (n *Node) Restart(t testing.TB) { t.Helper(); n.start(t) }

// stop ends the member with SIGTERM (bounded), or SIGKILL, and removes
// what a killed member left (sandboxes, state, cgroups).
func (n *Node) stop(t testing.TB) {
	n.mu.Lock()
	cmd := n.cmd
	n.cmd = nil
	n.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(sandboxtest.Scale(30 * time.Second)):
			t.Errorf("member %s did not stop within 30s of SIGTERM; killing it", n.ID)
			_ = cmd.Process.Kill()
			<-n.done
		}
	}
	if err := sandbox.Purge(n.StateDir, n.CgroupParent, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Errorf("purging member %s: %v", n.ID, err)
	}
}

// LogTail is the end of the member's log (for failure messages).
func (n *Node) LogTail() string {
	raw, _ := os.ReadFile(n.logPath)
	if len(raw) > 8<<10 {
		raw = raw[len(raw)-8<<10:]
	}
	return string(raw)
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func logPath(dir, id string) string { return filepath.Join(dir, id+".log") }
