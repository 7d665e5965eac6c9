package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// waitLog waits until some log line received so far matches pred.
func (h *harness) waitLog(t *testing.T, pred func(agent.LogLine) bool) agent.LogLine {
	t.Helper()
	deadline := time.NewTimer(testDeadline)
	defer deadline.Stop()
	for {
		for _, l := range h.snapshotLogs() {
			if pred(l) {
				return l
			}
		}
		select {
		case <-h.logc: // something new arrived: look again
		case <-deadline.C:
			t.Fatalf("log line not seen; have %+v", h.snapshotLogs())
		}
	}
}

// countingConn records how many invoke messages carried code.
type countingConn struct {
	net.Conn
	mu        sync.Mutex
	withCode  int
	withoutCd int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		if strings.Contains(line, `"code":"`) {
			c.withCode++
		} else if line != "" {
			c.withoutCd++
		}
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func TestCodeSentOnceThenCached(t *testing.T) {
	h := startAgentWrapped(t, func(c net.Conn) net.Conn { return &countingConn{Conn: c} })
	cc := h.conn.(*countingConn)
	code := `var n = 0; module.exports = function (cb) { cb(null, ++n); }`
	for i := 1; i <= 3; i++ {
		resp := h.do(t, newReq(code))
		// The counter lives in the module: one compile for three calls.
		if string(resp.Body) != fmt.Sprint(i) {
			t.Fatalf("call %d: body %s", i, resp.Body)
		}
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.withCode != 1 || cc.withoutCd != 2 {
		t.Fatalf("invokes with code %d, without %d; want 1 and 2", cc.withCode, cc.withoutCd)
	}
}

// TestNeedCodeAfterEviction: the agent's LRU (256) forgot a function the
// client believes it sent; the agent answers need_code and the client
// resends transparently.
func TestNeedCodeAfterEviction(t *testing.T) {
	h := startAgentWrapped(t, func(c net.Conn) net.Conn { return &countingConn{Conn: c} })
	cc := h.conn.(*countingConn)
	first := `module.exports = function (cb) { cb(null, 'first'); }`
	if resp := h.do(t, newReq(first)); string(resp.Body) != `"first"` {
		t.Fatalf("body %s", resp.Body)
	}
	for i := 0; i < 256; i++ {
		code := fmt.Sprintf(`module.exports = function (cb) { cb(null, "f%d"); }`, i)
		if resp := h.do(t, newReq(code)); string(resp.Body) != fmt.Sprintf(`"f%d"`, i) {
			t.Fatalf("filler %d: body %s", i, resp.Body)
		}
	}
	if resp := h.do(t, newReq(first)); resp.Status != 200 || string(resp.Body) != `"first"` {
		t.Fatalf("after eviction: %d %s", resp.Status, resp.Body)
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	// 257 first sends with code, then one without (need_code) and a resend.
	if cc.withCode != 258 || cc.withoutCd != 1 {
		t.Fatalf("invokes with code %d, without %d; want 258 and 1", cc.withCode, cc.withoutCd)
	}
}

// TestNeedCodeRawProtocol speaks the wire protocol directly to a fresh
// agent: an invoke without code gets need_code, the resend a result.
func TestNeedCodeRawProtocol(t *testing.T) {
	conn, exited := startRawAgent(t)
	br := bufio.NewReader(conn)
	readMsg := func() map[string]any {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(testDeadline))
		line, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		return m
	}
	if m := readMsg(); m["op"] != "ready" {
		t.Fatalf("first message %v", m)
	}
	code := `module.exports = function (cb) { cb(null, 'ok'); }`
	req := newReq(code)
	req.Code = ""
	send := func(r *agent.Request) {
		b, _ := json.Marshal(map[string]any{"op": "invoke", "id": 7, "cap": "c", "req": r})
		if _, err := conn.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
	}
	send(req)
	if m := readMsg(); m["op"] != "need_code" || m["id"] != 7.0 {
		t.Fatalf("got %v, want need_code for 7", m)
	}
	req.Code = code
	send(req)
	m := readMsg()
	if m["op"] != "result" || m["id"] != 7.0 || m["status"] != 200.0 || m["body"] != "Im9rIg==" {
		t.Fatalf("got %v", m)
	}
	conn.Close()
	select {
	case <-exited:
	case <-time.After(testDeadline):
		t.Fatal("agent did not exit after its channel closed")
	}
}

// startRawAgent starts the agent with a bare connection (no Client).
func startRawAgent(t *testing.T) (net.Conn, <-chan struct{}) {
	t.Helper()
	conn, cmd := spawnAgent(t, t.TempDir())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		conn.Close()
		select {
		case <-exited:
		case <-time.After(testDeadline):
			_ = cmd.Process.Kill()
		}
	})
	return conn, exited
}

func TestConcurrentCallsSlowDoesNotBlock(t *testing.T) {
	h := startAgent(t)
	slow := newReq(`module.exports = function (ctx, cb) {
		globalThis.releaseSlow = function () { cb(null, 'slow'); };
		console.log('slow started');
	}`)
	slow.ReqID = "slow"
	slowDone := make(chan *agent.Response, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
		defer cancel()
		resp, err := h.client.Do(ctx, slow)
		if err != nil {
			t.Errorf("slow: %v", err)
		}
		slowDone <- resp
	}()
	h.waitLog(t, func(l agent.LogLine) bool { return l.ReqID == "slow" && l.Msg == "slow started" })

	fast := `module.exports = function (ctx, cb) { setImmediate(function () { cb(null, ctx.id); }); }`
	var wg sync.WaitGroup
	errs := make(chan error, 49)
	for i := 0; i < 49; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := newReq(fast)
			r.ReqID = fmt.Sprintf("fast-%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
			defer cancel()
			resp, err := h.client.Do(ctx, r)
			if err != nil {
				errs <- err
				return
			}
			if want := fmt.Sprintf("%q", r.ReqID); string(resp.Body) != want {
				errs <- fmt.Errorf("call %d got %s, want %s", i, resp.Body, want)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	select {
	case <-slowDone:
		t.Fatal("slow call finished before it was released")
	default:
	}
	release := newReq(`module.exports = function (cb) { globalThis.releaseSlow(); cb(null, 'released'); }`)
	if resp := h.do(t, release); string(resp.Body) != `"released"` {
		t.Fatalf("release: %s", resp.Body)
	}
	select {
	case resp := <-slowDone:
		if resp == nil || string(resp.Body) != `"slow"` {
			t.Fatalf("slow response %+v", resp)
		}
	case <-time.After(testDeadline):
		t.Fatal("slow call never completed")
	}
}

func TestLogsAttributedAndCapped(t *testing.T) {
	h := startAgent(t)
	code := `module.exports = function (ctx, cb) {
		console.log('hello from', ctx.id);
		process.stderr.write('err line\n');
		console.error({obj: 1});
		setImmediate(function () {
			console.info('later', ctx.id);
			var n = Number(ctx.query.n || 0);
			for (var i = 0; i < n; i++) console.log('line ' + i + ' xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx');
			console.log('done', ctx.id);
			cb(null, 'ok');
		});
	}`
	a := newReq(code)
	a.ReqID = "A"
	b := newReq(code)
	b.ReqID = "B"
	b.URL = "/api/run/c/n?n=100"
	b.LogLimitBytes = 500
	var wg sync.WaitGroup
	for _, r := range []*agent.Request{a, b} {
		wg.Add(1)
		go func(r *agent.Request) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
			defer cancel()
			if _, err := h.client.Do(ctx, r); err != nil {
				t.Error(err)
			}
		}(r)
	}
	wg.Wait()
	h.waitLog(t, func(l agent.LogLine) bool { return l.ReqID == "A" && l.Msg == "done A" })
	h.waitLog(t, func(l agent.LogLine) bool { return l.ReqID == "B" && l.Msg == "[webtaskd: log output truncated]" })

	byReq := map[string][]agent.LogLine{}
	ids := map[string]uint64{}
	for _, l := range h.snapshotLogs() {
		byReq[l.ReqID] = append(byReq[l.ReqID], l)
		if prev, ok := ids[l.ReqID]; ok && prev != l.ID {
			t.Fatalf("req %s logged under ids %d and %d", l.ReqID, prev, l.ID)
		}
		ids[l.ReqID] = l.ID
	}
	if ids["A"] == ids["B"] {
		t.Fatalf("A and B share invocation id %d", ids["A"])
	}
	wantA := []agent.LogLine{
		{Stream: "stdout", Msg: "hello from A"},
		{Stream: "stderr", Msg: "err line"},
		{Stream: "stderr", Msg: "{ obj: 1 }"},
		{Stream: "stdout", Msg: "later A"},
		{Stream: "stdout", Msg: "done A"},
	}
	if len(byReq["A"]) != len(wantA) {
		t.Fatalf("A logs %+v", byReq["A"])
	}
	for i, w := range wantA {
		if g := byReq["A"][i]; g.Stream != w.Stream || g.Msg != w.Msg {
			t.Fatalf("A log %d = %+v, want %+v", i, g, w)
		}
	}
	bl := byReq["B"]
	total, markers := 0, 0
	for _, l := range bl {
		if l.Msg == "[webtaskd: log output truncated]" {
			markers++
			continue
		}
		total += len(l.Msg) + 1
	}
	if markers != 1 || total > 500 || bl[len(bl)-1].Msg != "[webtaskd: log output truncated]" {
		t.Fatalf("B: %d markers, %d bytes, %d lines; last %q", markers, total, len(bl), bl[len(bl)-1].Msg)
	}
	if len(byReq[""]) != 0 {
		t.Fatalf("unattributed lines: %+v", byReq[""])
	}
}

func TestUncaughtAsyncExceptions(t *testing.T) {
	h := startAgent(t)
	cases := []struct{ name, code, details string }{
		{"throw in timer", `module.exports = function (cb) { setTimeout(function () { throw new Error('async boom'); }, 1); }`, "Error: async boom"},
		{"unhandled rejection", `module.exports = function (cb) { Promise.reject(new RangeError('rej')); }`, "RangeError: rej"},
		{"3-arity throw in callback", `module.exports = function (ctx, req, res) { setImmediate(function () { null.x; }); }`, "TypeError: Cannot read properties of null (reading 'x')"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.do(t, newReq(tc.code))
			m, _ := jsonBody(t, resp).(map[string]any)
			if resp.Status != 500 || m["error"] != "Script generated an unhandled asynchronous exception." || m["details"] != tc.details {
				t.Fatalf("got %d %s", resp.Status, resp.Body)
			}
		})
	}
	// A throw after the answer is only logged; the agent keeps serving.
	late := newReq(`module.exports = function (ctx, cb) { cb(null, 'first'); setImmediate(function () { throw new Error('after'); }); }`)
	late.ReqID = "late"
	if resp := h.do(t, late); string(resp.Body) != `"first"` {
		t.Fatalf("late: %s", resp.Body)
	}
	h.waitLog(t, func(l agent.LogLine) bool {
		return l.ReqID == "late" && l.Stream == "stderr" && strings.HasPrefix(l.Msg, "Uncaught exception: Error: after")
	})
	if resp := h.do(t, newReq(`module.exports = function (cb) { cb(null, 'alive'); }`)); string(resp.Body) != `"alive"` {
		t.Fatalf("agent not serving after async exceptions: %s", resp.Body)
	}
}

func TestAgentExitsWhenChannelCloses(t *testing.T) {
	h := startAgent(t)
	// A live interval keeps Node's loop busy: only the channel close ends it.
	h.do(t, newReq(`setInterval(function () {}, 1000); module.exports = function (cb) { cb(); }`))
	if err := h.client.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-h.exited:
	case <-time.After(testDeadline):
		t.Fatal("agent still running after the channel closed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	if _, err := h.client.Do(ctx, newReq(`module.exports = function (cb) { cb(); }`)); !errors.Is(err, agent.ErrClosed) {
		t.Fatalf("Do after Close: %v, want ErrClosed", err)
	}
}

func TestAgentDeathFailsPending(t *testing.T) {
	h := startAgent(t)
	req := newReq(`module.exports = function (cb) { console.log('waiting'); }`)
	req.ReqID = "pending"
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
		defer cancel()
		_, err := h.client.Do(ctx, req)
		errc <- err
	}()
	h.waitLog(t, func(l agent.LogLine) bool { return l.ReqID == "pending" })
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, agent.ErrClosed) {
			t.Fatalf("pending Do: %v, want ErrClosed", err)
		}
	case <-time.After(testDeadline):
		t.Fatal("pending Do not failed after the agent died")
	}
	select {
	case <-h.client.Done():
	case <-time.After(testDeadline):
		t.Fatal("Done not closed")
	}
}

func TestDoContextExpiry(t *testing.T) {
	h := startAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := h.client.Do(ctx, newReq(`module.exports = function (cb) { /* never answers */ }`))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	// The channel is still usable for the caller's other calls.
	if resp := h.do(t, newReq(`module.exports = function (cb) { cb(null, 2); }`)); string(resp.Body) != "2" {
		t.Fatalf("body %s", resp.Body)
	}
}

var _ = io.EOF

// TestHeapLimitFollowsFlag: the agent puts --max-old-space-size back to
// V8's default while it loads (so that node's code cache for its built-in
// modules is used) and restores it before it is ready. The runtime's heap
// limit, and that of a Worker a webtask starts, still follow the flag
// (64 MiB here; V8 sizes a heap without it from the host's memory, at
// least 256 MiB).
func TestHeapLimitFollowsFlag(t *testing.T) {
	h := startAgent(t)
	code := `module.exports = (cb) => {
  const { Worker } = require('worker_threads');
  const main = require('v8').getHeapStatistics().heap_size_limit;
  const w = new Worker("require('worker_threads').parentPort.postMessage(require('v8').getHeapStatistics().heap_size_limit)", { eval: true });
  w.once('message', (worker) => { w.terminate(); cb(null, { main, worker, argv: process.execArgv }); });
  w.once('error', (e) => cb(e));
};`
	resp := h.do(t, newReq(code))
	if resp.Status != 200 {
		t.Fatalf("status %d: %s", resp.Status, resp.Body)
	}
	var got struct {
		Main, Worker float64
		Argv         []string
	}
	if err := json.Unmarshal(resp.Body, &got); err != nil {
		t.Fatalf("body %s: %v", resp.Body, err)
	}
	const mib = 1 << 20
	for name, limit := range map[string]float64{"runtime": got.Main, "worker": got.Worker} {
		if limit <= 64*mib || limit > 160*mib {
			t.Errorf("%s heap limit %.0f MiB, want above 64 and at most 160 (node %v)", name, limit/mib, got.Argv)
		}
	}
}

// TestBootSaysNothing: the agent boots and exits without a word on its own
// stdout or stderr (which a sandbox's daemon logs). It reaches node's
// v8 binding through process.binding, deprecated: node's DEP0111 warning
// is silenced for that one call.
func TestBootSaysNothing(t *testing.T) {
	var out bytes.Buffer
	conn, cmd := spawnAgentOut(t, t.TempDir(), &out)
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	_ = conn.SetReadDeadline(time.Now().Add(testDeadline))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(line, `"op":"ready"`) {
		t.Fatalf("first line %q, %v; want ready", line, err)
	}
	conn.Close() // the agent exits when its channel closes
	select {
	case <-exited:
	case <-time.After(testDeadline):
		_ = cmd.Process.Kill()
		t.Fatal("agent did not exit after its channel closed")
	}
	if out.Len() != 0 {
		t.Errorf("agent printed at boot:\n%s", out.String())
	}
}
