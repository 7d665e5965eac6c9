package agent_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/rootfs"
	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// testDeadline bounds every wait in these tests (a hang fails, it never
// stalls the suite).
const testDeadline = 20 * time.Second

// harness is one running agent process and its client.
type harness struct {
	t      *testing.T
	cmd    *exec.Cmd
	client *agent.Client
	exited chan struct{} // closed when the agent process exited
	conn   net.Conn
	// modulesDir is the agent's module directory (/node_modules in a sandbox).
	modulesDir string
	// storeDir is the agent's module store (/modules in a sandbox).
	storeDir string

	mu   sync.Mutex
	logs []agent.LogLine
	logc chan agent.LogLine
}

// startAgent runs the embedded agent with the host's node, wired over a
// socketpair as fd 3, and waits for ready.
func startAgent(t testing.TB) *harness {
	t.Helper()
	return startAgentWrapped(t, nil)
}

// startAgentWrapped is startAgent with the client's connection wrapped.
func startAgentWrapped(t testing.TB, wrap func(net.Conn) net.Conn) *harness {
	t.Helper()
	return startAgentWith(t, wrap)
}

// startAgentWith is startAgentWrapped with client options.
func startAgentWith(t testing.TB, wrap func(net.Conn) net.Conn, opts ...agent.Option) *harness {
	t.Helper()
	dir := t.TempDir()
	modulesDir := filepath.Join(dir, "node_modules")
	storeDir := filepath.Join(dir, "modules")
	ours, cmd := spawnAgent(t, dir, "WEBTASKD_MODULES_DIR="+modulesDir, "WEBTASKD_MODULE_STORE="+storeDir)
	h := &harness{cmd: cmd, exited: make(chan struct{}), logc: make(chan agent.LogLine, 1024),
		modulesDir: modulesDir, storeDir: storeDir}
	if tt, ok := t.(*testing.T); ok {
		h.t = tt
	}
	go func() { _ = cmd.Wait(); close(h.exited) }()
	if wrap != nil {
		ours = wrap(ours)
	}
	h.conn = ours
	h.client = agent.NewClient(ours, func(l agent.LogLine) {
		h.mu.Lock()
		h.logs = append(h.logs, l)
		h.mu.Unlock()
		select {
		case h.logc <- l:
		default:
		}
	}, opts...)
	t.Cleanup(func() {
		h.client.Close()
		select {
		case <-h.exited:
		case <-time.After(testDeadline):
			_ = cmd.Process.Kill()
			t.Errorf("agent did not exit after the channel closed")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	r, err := h.client.WaitReady(ctx)
	if err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if r.Pid != cmd.Process.Pid || r.Node == "" {
		t.Fatalf("ready = %+v, want pid %d", r, cmd.Process.Pid)
	}
	return h
}

// spawnAgent starts the runtime agent (written into dir) with the host's
// node and env, its fd 3 one end of a socketpair; it returns the other
// end, pollable so that Close interrupts a blocked Read. The agent's own
// stdout and stderr go to the test's stderr.
func spawnAgent(t testing.TB, dir string, env ...string) (net.Conn, *exec.Cmd) {
	t.Helper()
	return spawnAgentOut(t, dir, os.Stderr, env...)
}

// spawnAgentOut is spawnAgent with the agent's own stdout and stderr
// written to out.
func spawnAgentOut(t testing.TB, dir string, out io.Writer, env ...string) (net.Conn, *exec.Cmd) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("SKIPPING: node is not installed; the runtime agent tests need it")
	}
	script, err := rootfs.WriteAgent(filepath.Join(dir, "agent"))
	if err != nil {
		t.Fatal(err)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ourFile := os.NewFile(uintptr(fds[0]), "agent-chan")
	ours, err := net.FileConn(ourFile)
	ourFile.Close()
	if err != nil {
		t.Fatal(err)
	}
	theirs := os.NewFile(uintptr(fds[1]), "agent-chan-child")
	args := []string{"--max-old-space-size=64"}
	if d := os.Getenv("WEBTASKD_AGENT_CPU_PROF_DIR"); d != "" {
		// Profiling the agent under the benchmarks (docs/PERFORMANCE.md):
		// node writes a .cpuprofile there when it exits.
		args = append(args, "--cpu-prof", "--cpu-prof-dir="+d)
	}
	cmd := exec.Command(node, append(args, script)...)
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Env = env
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	theirs.Close()
	return ours, cmd
}

func hashOf(code string) string {
	s := sha256.Sum256([]byte(code))
	return hex.EncodeToString(s[:])
}

// newReq is a GET request for code with sane defaults.
func newReq(code string) *agent.Request {
	return &agent.Request{
		ReqID:         "req-1",
		Container:     "c",
		Name:          "n",
		URLFormat:     1,
		CodeHash:      hashOf(code),
		Code:          code,
		Method:        "GET",
		URL:           "/api/run/c/n",
		Headers:       map[string][]string{"host": {"localhost"}},
		PB:            2,
		LogLimitBytes: 1 << 20,
	}
}

func (h *harness) do(t testing.TB, req *agent.Request) *agent.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	resp := h.doUnread(t, ctx, req)
	if resp.Stream != nil {
		// A streamed response: read it whole (bounded by testDeadline).
		stop := context.AfterFunc(ctx, func() { resp.Stream.Abort(ctx.Err()) })
		defer stop()
		defer resp.Stream.Close()
		b, err := io.ReadAll(resp.Stream)
		if err != nil {
			t.Fatalf("reading the streamed body: %v", err)
		}
		resp.Body = b
	}
	return resp
}

// doUnread sends req and returns its response, a streamed body unread.
func (h *harness) doUnread(t testing.TB, ctx context.Context, req *agent.Request) *agent.Response {
	t.Helper()
	resp, err := h.client.Do(ctx, req)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	return resp
}

// jsonBody decodes a response body into a generic value.
func jsonBody(t testing.TB, resp *agent.Response) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(resp.Body, &v); err != nil {
		t.Fatalf("body %q is not JSON: %v", resp.Body, err)
	}
	return v
}

// logsFor returns the log lines received so far for invocation-less checks.
func (h *harness) snapshotLogs() []agent.LogLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]agent.LogLine(nil), h.logs...)
}
