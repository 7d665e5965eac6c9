package daemon_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// vmRSS reads a process's resident set size in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// TestHeldBodiesAreBounded is issue 11's acceptance 1: 200 connections from
// 127.0.0.1 announce 5 MiB bodies and send none. The daemon (a child
// process, so that its RSS is its own) must not allocate for them, must
// cut each off by the read deadline, and must keep answering a client on
// 127.0.0.2 meanwhile.
func TestHeldBodiesAreBounded(t *testing.T) {
	RequireRoot(t)
	const (
		conns       = 200
		readTimeout = 2 * time.Second
		// slack covers scheduling on a loaded machine; the point is
		// that connections do not stay open for good.
		slack = 5 * time.Second
	)
	cfg := Config(t)
	child, addr, master := startChildDaemon(t, cfg,
		"WEBTASKD_POOL_SIZE=0",
		"WEBTASKD_READ_HEADER_TIMEOUT=1s",
		"WEBTASKD_READ_TIMEOUT="+readTimeout.String())
	t.Cleanup(func() {
		_ = child.Process.Kill()
		_ = child.Wait()
	})
	env := Attach(t, cfg, "http://"+addr, master)
	env.PutWebtask("acme", "sink", helloCode, nil)

	// The other client: its own source address, a fresh connection per
	// request (its requests must not ride on a connection opened before).
	other := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
		DisableKeepAlives: true,
	}}
	otherCall := func(what string) {
		t.Helper()
		req, _ := http.NewRequest("GET", env.Base+"/api/webtask/acme/sink", nil)
		req.Header.Set("Authorization", "Bearer "+master)
		resp, err := other.Do(req)
		if err != nil {
			t.Fatalf("client on 127.0.0.2 (%s): %v", what, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("client on 127.0.0.2 (%s): status %d", what, resp.StatusCode)
		}
	}
	otherCall("before")
	pid := child.Process.Pid
	before := vmRSS(t, pid)

	held := make([]net.Conn, 0, conns)
	sent := make([]time.Time, 0, conns)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, Timeout: 10 * time.Second}
	head := "POST /api/run/acme/sink HTTP/1.1\r\nHost: " + addr +
		"\r\nContent-Type: application/octet-stream\r\nContent-Length: 5242880\r\n\r\n"
	for i := 0; i < conns; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		held = append(held, c)
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		sent = append(sent, time.Now())
	}
	// While they are held: the other client answers, and the daemon's
	// memory stays put.
	peak := before
	for i := 0; i < 5; i++ {
		otherCall(fmt.Sprintf("during %d", i))
		peak = max(peak, vmRSS(t, pid))
	}
	// Every held connection is answered (400: the body never came) or
	// closed once the read deadline passed.
	for i, c := range held {
		_ = c.SetReadDeadline(sent[i].Add(readTimeout + slack))
		br := bufio.NewReader(c)
		_, err := io.Copy(io.Discard, br)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection %d still open %s after its headers (read deadline %s)", i, readTimeout+slack, readTimeout)
		}
		peak = max(peak, vmRSS(t, pid))
	}
	otherCall("after")
	grew := peak - before
	t.Logf("daemon RSS before %d MiB, peak %d MiB (+%d KiB) with %d held 5 MiB bodies", before>>20, peak>>20, grew>>10, conns)
	if grew >= 50<<20 {
		t.Fatalf("daemon RSS grew by %d MiB (want < 50 MiB)", grew>>20)
	}
}

// TestReadDeadlineSparesLongCalls: the read deadline bounds receiving a
// request, not serving it: a call (GET and POST with a body) that runs
// past it still answers.
func TestReadDeadlineSparesLongCalls(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 0
	cfg.HTTP.ReadHeaderTimeout = 500 * time.Millisecond
	cfg.HTTP.ReadTimeout = 500 * time.Millisecond
	env := Start(t, cfg)
	env.PutWebtask("acme", "slow", `module.exports = (ctx, cb) => setTimeout(() => cb(null, { ok: 1 }), 1500);`, nil)
	MustStatus(t, env.Call("GET", "/api/run/acme/slow", "", nil), 200, "GET past the read deadline")
	MustStatus(t, env.Call("POST", "/api/run/acme/slow", "", map[string]any{"x": 1}), 200, "POST past the read deadline")
}
