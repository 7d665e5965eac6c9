package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

func TestLogsBacklogAndFollow(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.API.LogPingInterval = 200 * time.Millisecond // pings must not print anything
	env := Start(t, cfg)
	env.PutWebtask("lg", "say", `module.exports = function (ctx, cb) {
	  console.log('said ' + (ctx.query.w || 'nothing'));
	  cb(null, {});
	};`, nil)
	MustStatus(t, env.Call("GET", "/api/run/lg/say?w=first", "", nil), 200, "run")

	// Without -f: the recent lines, then exit. (Output reaches the hub
	// asynchronously, just after the response: poll.)
	var out string
	var err error
	WaitFor(t, "the backlog", 10*time.Second, func() bool {
		out, err = wtctl(t, env, "logs", "lg")
		return err != nil || out != ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, " said first\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("wtctl logs printed %q", out)
	}
	out, err = wtctl(t, env, "logs", "--json", "lg")
	if err != nil || !strings.Contains(out, `"msg":"said first"`) || !strings.Contains(out, `"sandbox":true`) {
		t.Fatalf("wtctl logs --json printed %q, %v", out, err)
	}

	// -f: new lines until interrupted.
	var buf LogBuffer
	m := NewMain(&buf, &buf)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- m.Run(ctx, []string{"--url", env.Base, "--data-dir", env.Cfg.DataDir, "logs", "-f", "--tail", "0", "lg"})
	}()
	// The follower subscribes asynchronously: call until its line shows up.
	WaitFor(t, "a followed line", 20*time.Second, func() bool {
		MustStatus(t, env.Call("GET", "/api/run/lg/say?w=followed", "", nil), 200, "run")
		return strings.Contains(buf.String(), " said followed\n")
	})
	if strings.Contains(buf.String(), "said first") || strings.Contains(buf.String(), "ping") {
		t.Fatalf("--tail 0 printed the backlog or pings: %q", buf.String())
	}
	cancel()
	if err := Receive(t, done, 10*time.Second, "wtctl logs -f to stop when interrupted"); err != nil {
		t.Fatalf("wtctl logs -f after interrupt: %v", err)
	}

	// A stream closed by the daemon is an error for -f. This follower has
	// its own buffer: seeing the backlog there proves it is connected.
	var buf2 LogBuffer
	go func() {
		done <- NewMain(&buf2, &buf2).Run(context.Background(), []string{"--url", env.Base, "--data-dir", env.Cfg.DataDir, "logs", "-f", "lg"})
	}()
	WaitFor(t, "the follower to print the backlog", 20*time.Second, func() bool {
		return strings.Contains(buf2.String(), "said followed")
	})
	env.Stop()
	if err := Receive(t, done, 30*time.Second, "wtctl logs -f to end when the daemon stopped"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("wtctl logs -f when the daemon stopped: %v", err)
	}
	if _, err := wtctl(t, Start(t, cfg), "logs", "no/such"); err == nil {
		t.Fatal("an invalid container name was accepted")
	}
}

func TestRecordPrinterWebtaskFilter(t *testing.T) {
	recs := []string{
		`{"time":"t1","req_id":"a","webtask":"one","sandbox":true,"msg":"from one"}`,
		`{"time":"t2","req_id":"b","webtask":"two","sandbox":true,"msg":"from two"}`,
		`{"time":"t3","name":"webtask-logs","msg":"3 lines dropped"}`,
	}
	var buf bytes.Buffer
	for _, r := range recs {
		recordPrinter{webtask: "one"}.print(&buf, r)
	}
	if got, want := buf.String(), "t1 a from one\nt3 - 3 lines dropped\n"; got != want {
		t.Errorf("--webtask one printed %q, want %q", got, want)
	}
	buf.Reset()
	recordPrinter{asJSON: true, webtask: "two"}.print(&buf, recs[1])
	recordPrinter{asJSON: true, webtask: "two"}.print(&buf, recs[0])
	if got := buf.String(); got != recs[1]+"\n" {
		t.Errorf("--json --webtask two printed %q", got)
	}
}
