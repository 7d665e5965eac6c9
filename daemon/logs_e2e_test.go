package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	Event string // "" for data events
	Data  string
}

// sseStream reads a log stream the way webtask-log-stream does: lines up
// to a blank line make one event; "event:" names it, the last "data:"
// line is its data; comment lines (":ok") are skipped.
type sseStream struct {
	events chan sseEvent
	body   io.Closer
}

func openLogStream(t *testing.T, env *Env, container, query, bearer string) (*sseStream, *http.Response) {
	t.Helper()
	req, err := http.NewRequest("GET", env.Base+"/api/logs/tenant/"+container+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open log stream: %v", err)
	}
	if resp.StatusCode != 200 {
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(string(raw)))
		return nil, resp
	}
	s := &sseStream{events: make(chan sseEvent, 1<<16), body: resp.Body}
	t.Cleanup(func() { resp.Body.Close() })
	go func() { // ends when the body is closed or the stream ends
		defer close(s.events)
		br := bufio.NewReader(resp.Body)
		var ev sseEvent
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if ev.Data != "" || ev.Event != "" {
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
			case strings.HasPrefix(line, "event:"):
				ev.Event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				ev.Data = strings.TrimSpace(strings.TrimPrefix(line, "data:"))
			}
		}
	}()
	return s, resp
}

// logRecord is the bunyan record of a data event.
type logRecord struct {
	Name      string  `json:"name"`
	Hostname  string  `json:"hostname"`
	Pid       int     `json:"pid"`
	Level     int     `json:"level"`
	Msg       string  `json:"msg"`
	Time      string  `json:"time"`
	V         *int    `json:"v"`
	Container string  `json:"container"`
	ReqID     string  `json:"req_id"`
	Webtask   string  `json:"webtask"`
	Stream    string  `json:"stream"`
	Sandbox   bool    `json:"sandbox"`
	Dropped   float64 `json:"dropped"`
}

// next returns the next data record (skipping pings), or fails at the deadline.
func (s *sseStream) next(t *testing.T, deadline time.Time) logRecord {
	t.Helper()
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatal("log stream ended")
			}
			if ev.Event != "" {
				continue
			}
			var r logRecord
			if err := json.Unmarshal([]byte(ev.Data), &r); err != nil {
				t.Fatalf("data %q is not a JSON record: %v", ev.Data, err)
			}
			return r
		case <-time.After(time.Until(deadline)):
			t.Fatal("timed out waiting for a log record")
		}
	}
}

const thousandLinesCode = `module.exports = function (ctx, cb) {
  for (var i = 0; i < 1000; i++) console.log('line ' + i);
  cb(null, { ok: true });
};`

func TestLogs1000LinesInOrder(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.API.LogPingInterval = 300 * time.Millisecond
	env := Start(t, cfg)
	env.PutWebtask("lg", "many", thousandLinesCode, nil)
	tenant := issueTenant(t, env, "lg")

	// Authorization: the container's token (key or Bearer) or master only.
	for _, tc := range []struct {
		query, bearer string
		want          int
	}{
		{"", "", 403},
		{"?key=" + issueTenant(t, env, "other"), "", 403},
		{"?tail=x&key=" + tenant, "", 400},
	} {
		if _, resp := openLogStream(t, env, "lg", tc.query, tc.bearer); resp.StatusCode != tc.want {
			t.Fatalf("log stream %q: status %d, want %d", tc.query, resp.StatusCode, tc.want)
		}
	}
	bearer, _ := openLogStream(t, env, "lg", "", env.Master)
	if bearer == nil {
		t.Fatal("master Bearer token refused")
	}
	s, resp := openLogStream(t, env, "lg", "?key="+tenant, "")
	if s == nil {
		t.Fatalf("log stream: %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}

	r := env.Call("GET", "/api/run/lg/many", "", nil)
	MustStatus(t, r, 200, "run")
	reqID := r.Header.Get("X-Wt-Request-Id")
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 1000; i++ {
		rec := s.next(t, deadline)
		if rec.Msg != fmt.Sprint("line ", i) {
			t.Fatalf("record %d: %+v", i, rec)
		}
		if rec.Name != "sandbox-logs" || rec.Level != 30 || rec.V == nil || *rec.V != 0 || !rec.Sandbox ||
			rec.Container != "lg" || rec.ReqID != reqID || rec.Webtask != "many" || rec.Hostname == "" || rec.Pid == 0 || rec.Stream != "stdout" {
			t.Fatalf("record %d has the wrong shape: %+v (req id %s)", i, rec, reqID)
		}
		if _, err := time.Parse(time.RFC3339Nano, rec.Time); err != nil {
			t.Fatalf("time %q: %v", rec.Time, err)
		}
	}
	// The master's stream saw the same lines.
	if rec := bearer.next(t, deadline); rec.Msg != "line 0" {
		t.Fatalf("master stream first record %+v", rec)
	}

	// Keep-alives: "event: ping" with data {}.
	pingBy := time.After(10 * time.Second)
	for seen := false; !seen; {
		select {
		case ev := <-s.events:
			seen = ev.Event == "ping" && ev.Data == "{}"
		case <-pingBy:
			t.Fatal("no ping event")
		}
	}

	// Raw output of the runtime (not attributable to a call) is in the
	// container's stream too, without a request id.
	env.PutWebtask("lg", "raw", `module.exports = function (cb) {
	  require('fs').writeSync(1, 'raw marker\n');
	  cb(null, {});
	};`, nil)
	MustStatus(t, env.Call("GET", "/api/run/lg/raw", "", nil), 200, "run raw")
	rec := s.next(t, deadline)
	if rec.Msg != "raw marker" || rec.ReqID != "" || rec.Container != "lg" {
		t.Fatalf("raw output record %+v", rec)
	}

	// A backlog on request, and follow=0 ends the stream after it.
	back, resp := openLogStream(t, env, "lg", "?follow=0&tail=3&key="+tenant, "")
	if back == nil {
		t.Fatalf("backlog stream: %d", resp.StatusCode)
	}
	var msgs []string
	for ev := range back.events {
		var r logRecord
		_ = json.Unmarshal([]byte(ev.Data), &r)
		msgs = append(msgs, r.Msg)
	}
	if strings.Join(msgs, "|") != "line 998|line 999|raw marker" {
		t.Fatalf("backlog = %q", msgs)
	}
}

func TestLogsTruncatedPerInvocation(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.LogLimitBytes = 1000
	env := Start(t, cfg)
	env.PutWebtask("lg", "chatty", thousandLinesCode, nil)
	s, resp := openLogStream(t, env, "lg", "", env.Master)
	if s == nil {
		t.Fatalf("log stream: %d", resp.StatusCode)
	}
	MustStatus(t, env.Call("GET", "/api/run/lg/chatty", "", nil), 200, "run")
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		rec := s.next(t, deadline)
		if rec.Msg == "[webtaskd: log output truncated]" {
			if i < 50 || i > 200 {
				t.Fatalf("truncated after %d lines of a 1000-byte cap", i)
			}
			break
		}
		if rec.Msg != fmt.Sprint("line ", i) {
			t.Fatalf("record %d: %q", i, rec.Msg)
		}
	}
	// A stream opened without tail starts with the last seconds' lines: a
	// reader connecting just after a call still sees its output.
	env.PutWebtask("lg", "early", `module.exports = function (cb) { console.log('early bird'); cb(null, {}); };`, nil)
	MustStatus(t, env.Call("GET", "/api/run/lg/early", "", nil), 200, "run early")
	late, resp := openLogStream(t, env, "lg", "", env.Master)
	if late == nil {
		t.Fatalf("log stream: %d", resp.StatusCode)
	}
	for {
		if rec := late.next(t, deadline); rec.Msg == "early bird" {
			break
		}
	}
}

var droppedMetric = regexp.MustCompile(`(?m)^webtaskd_log_records_dropped_total (\S+)$`)

// TestLogsStalledReaderDoesNotSlowWebtask: a reader that opens the stream
// and never reads fills its socket and its bounded buffer; the webtask's
// calls still complete (within the exec timeout, as 200s) and the reader's
// losses are counted.
func TestLogsStalledReaderDoesNotSlowWebtask(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.LogLimitBytes = 64 << 20
	cfg.Logs.BufferRecords = 64
	env := Start(t, cfg)
	// 20,000 lines of ~200 bytes: 4 MB of output per call.
	env.PutWebtask("lg", "flood", `module.exports = function (ctx, cb) {
	  var pad = 'x'.repeat(190);
	  for (var i = 0; i < 20000; i++) console.log(i + ' ' + pad);
	  cb(null, { lines: 20000 });
	};`, nil)

	// The stalled reader: a small receive buffer, reads the response
	// header, then never reads again.
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		_ = c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	conn, err := d.DialContext(context.Background(), "tcp", strings.TrimPrefix(env.Base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /api/logs/tenant/lg?key=%s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n", env.Master)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(conn, 16)
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("stalled reader's stream: %q %v", status, err)
	}
	for { // the headers: the subscription exists once they were sent
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}

	for i := 0; i < 3; i++ {
		start := time.Now()
		r := env.Call("GET", "/api/run/lg/flood", "", nil)
		took := time.Since(start)
		if r.Status != 200 || string(r.Body) != `{"lines":20000}` {
			t.Fatalf("call %d with a stalled log reader: %d %s (after %s)", i, r.Status, r.Body, took)
		}
		t.Logf("call %d with a stalled log reader answered in %s (exec timeout %s)", i, took, cfg.Sandbox.ExecTimeout)
	}
	m := env.Call("GET", "/metrics", env.Master, nil)
	MustStatus(t, m, 200, "metrics")
	mm := droppedMetric.FindSubmatch(m.Body)
	if mm == nil {
		t.Fatalf("no webtaskd_log_records_dropped_total in /metrics")
	}
	dropped, _ := strconv.ParseFloat(string(mm[1]), 64)
	if dropped == 0 {
		t.Fatal("the stalled reader's buffer never filled (no records dropped): the test proves nothing")
	}
	t.Logf("records dropped for the stalled reader: %.0f of 60000", dropped)
}
