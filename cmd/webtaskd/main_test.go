package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/daemon/daemontest"
	"github.com/webtaskd/webtaskd/store"
)

func TestMain(m *testing.M) { daemontest.RunTests(m, "webtaskd main") }

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	m := NewMain(&out)
	m.stdout = &out
	if err := m.ParseFlags([]string{"version"}); err == nil {
		t.Fatal("version: want flag.ErrHelp (print and exit 0)")
	}
	for _, want := range []string{"webtaskd ", "commit:", "go:      go1.", "runc:    v", fmt.Sprintf("schema:  %d\n", store.SchemaVersion())} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("version output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestNotifyReadyAfterServing: with a fake NOTIFY_SOCKET, READY=1 arrives
// only once /healthz and /readyz answer 200, and STOPPING=1 when shutdown
// begins.
func TestNotifyReadyAfterServing(t *testing.T) {
	daemontest.RequireRoot(t)
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)

	m := NewMain(daemontest.Writer{T: t})
	m.Config = daemontest.Config(t)
	m.Logger = daemontest.Logger(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- m.Run(ctx) }()

	msg := readNotify(t, conn)
	if !strings.Contains(msg, "READY=1") {
		t.Fatalf("first notification %q, want READY=1", msg)
	}
	// READY carries the address (STATUS=serving on ADDR): the daemon must
	// answer there now, without any wait.
	_, addr, ok := strings.Cut(msg, "STATUS=serving on ")
	if !ok {
		t.Fatalf("READY without the serving address: %q", msg)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + strings.TrimSpace(addr) + path)
		if err != nil {
			t.Fatalf("GET %s right after READY=1: %v", path, err)
		}
		var r types.Readiness
		_ = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s right after READY=1: %d", path, resp.StatusCode)
		}
		if path == "/readyz" && (r.Checks["store"] != "ok" || r.Checks["sandboxes"] != "ok") {
			t.Fatalf("readyz = %+v", r)
		}
	}
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	if msg := readNotify(t, conn); !strings.Contains(msg, "STOPPING=1") {
		t.Fatalf("notification at shutdown %q, want STOPPING=1", msg)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// readNotify reads one datagram, bounded.
func readNotify(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(45 * time.Second))
	n, _, err := conn.ReadFromUnix(buf)
	if err != nil {
		t.Fatalf("no sd_notify message: %v", err)
	}
	return string(buf[:n])
}
