package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// doStream sends req and returns its streamed response (failing when the
// response is complete instead).
func doStream(t *testing.T, h *harness, req *agent.Request) *agent.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	resp := h.doUnread(t, ctx, req)
	if resp.Stream == nil {
		t.Fatalf("response %d %q is not streamed", resp.Status, resp.Body)
	}
	// Bound every read of the test.
	stop := time.AfterFunc(testDeadline, func() { resp.Stream.Abort(errors.New("test deadline")) })
	t.Cleanup(func() { stop.Stop(); resp.Stream.Close() })
	return resp
}

// globalOf runs a 1-arity webtask in the same agent that answers
// global[name] (the webtasks of one agent share their globals).
func globalOf(t *testing.T, h *harness, name string) any {
	t.Helper()
	resp := h.do(t, newReq(`module.exports = function (cb) { cb(null, { v: global[`+"'"+name+"'"+`] === undefined ? null : global[`+"'"+name+"'"+`] }); };`))
	var v struct{ V any }
	if err := json.Unmarshal(resp.Body, &v); err != nil {
		t.Fatalf("global %s: %q: %v", name, resp.Body, err)
	}
	return v.V
}

// The head leaves at writeHead, each chunk as it is written, in order.
func TestStreamChunksAsWritten(t *testing.T) {
	h := startAgent(t)
	resp := doStream(t, h, newReq(`module.exports = function (ctx, req, res) {
		res.writeHead(201, { 'content-type': 'text/plain', 'x-a': ['1', '2'] });
		res.write('one;');
		global.release = function () { res.write('two;'); res.end('three'); };
	};`))
	if resp.Status != 201 || resp.Headers["content-type"][0] != "text/plain" || strings.Join(resp.Headers["x-a"], ",") != "1,2" {
		t.Fatalf("head %d %v", resp.Status, resp.Headers)
	}
	first, err := resp.Stream.Next()
	if err != nil || string(first) != "one;" {
		t.Fatalf("first chunk %q %v", first, err)
	}
	// The rest exists only once the test asks for it.
	h.do(t, newReq(`module.exports = function (cb) { global.release(); cb(); };`))
	rest, err := io.ReadAll(resp.Stream)
	if err != nil || string(rest) != "two;three" {
		t.Fatalf("rest %q %v", rest, err)
	}
}

// A reader that does not read holds the webtask at the window: its writes
// wait (write returns false, callbacks and 'drain' come late), the client
// never holds more than StreamWindowBytes, and every byte arrives in order.
func TestStreamBackpressure(t *testing.T) {
	h := startAgent(t)
	const size, pieces = 128 << 10, 64
	resp := doStream(t, h, newReq(`module.exports = function (ctx, req, res) {
		const N = 64, size = 128 * 1024;
		global.acked = 0;
		let i = 0;
		function more() {
			while (i < N) {
				const buf = Buffer.alloc(size, i % 251);
				i++;
				if (!res.write(buf, () => { global.acked += size; })) {
					res.once('drain', more);
					return;
				}
			}
			res.end();
		}
		more();
	};`))
	// Bounded poll (each step a round trip to the agent, no sleep) until
	// the webtask has sent what the window allows; it must get no further
	// while nothing is read.
	deadline := time.Now().Add(testDeadline)
	for globalOf(t, h, "acked").(float64) < agent.StreamWindowBytes {
		if time.Now().After(deadline) {
			t.Fatal("the webtask never filled the window")
		}
	}
	for range 20 {
		if acked := globalOf(t, h, "acked").(float64); acked > agent.StreamWindowBytes {
			t.Fatalf("%v bytes acknowledged to the webtask with nothing read (window %d)", acked, agent.StreamWindowBytes)
		}
	}
	got, err := io.ReadAll(resp.Stream)
	if err != nil || len(got) != size*pieces {
		t.Fatalf("read %d bytes, %v; want %d", len(got), err, size*pieces)
	}
	for k, b := range got {
		if want := byte((k / size) % 251); b != want {
			t.Fatalf("byte %d is %d, want %d", k, b, want)
		}
	}
}

// Closing a stream early aborts the webtask's response: res and req emit
// 'close', pending writes fail, and the agent keeps serving.
func TestStreamAbort(t *testing.T) {
	h := startAgent(t)
	resp := doStream(t, h, newReq(`module.exports = function (ctx, req, res) {
		global.closed = false;
		res.on('close', () => { global.closed = { ended: res.writableEnded }; });
		res.write('x');
		const t = setInterval(() => { if (!res.write('y')) {} }, 5);
		res.on('close', () => clearInterval(t));
	};`))
	if b, err := resp.Stream.Next(); err != nil || string(b) != "x" {
		t.Fatalf("first chunk %q %v", b, err)
	}
	resp.Stream.Close()
	deadline := time.Now().Add(testDeadline)
	for {
		v := globalOf(t, h, "closed")
		if m, ok := v.(map[string]any); ok {
			if m["ended"] != false {
				t.Fatalf("close after abort: %v", m)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the webtask never saw close")
		}
	}
	if _, err := resp.Stream.Next(); err == nil {
		t.Fatal("read after Close succeeded")
	}
}

// Storage calls work while a response streams, until its end.
func TestStreamStorageWhileStreaming(t *testing.T) {
	m := newMemStorage()
	h := startStorageAgent(t, m)
	resp := doStream(t, h, newReq(`module.exports = function (ctx, req, res) {
		res.write('a');
		ctx.storage.set({ n: 1 }, { force: 1 }, function (err) {
			if (err) return res.end('set: ' + err.message);
			ctx.storage.get(function (err, d) { res.end(err ? 'get: ' + err.message : JSON.stringify(d)); });
		});
	};`))
	got, err := io.ReadAll(resp.Stream)
	if err != nil || string(got) != `a{"n":1}` {
		t.Fatalf("body %q %v", got, err)
	}
}

// Header bytes round-trip exactly: request header bytes reach the
// webtask as Node's latin1 strings, response header strings leave as
// their latin1 bytes; duplicates and set-cookie arrays are kept.
func TestHeaderBytesRoundTrip(t *testing.T) {
	h := startAgent(t)
	utf8Bytes := "h\xc3\xa9llo \xe2\x9c\x93" // 'héllo ✓' in UTF-8
	latin1 := "caf\xe9"                      // 'café' in latin1
	req := newReq(`module.exports = function (ctx, req, res) {
		const codes = (s) => Array.from(s, (c) => c.charCodeAt(0));
		res.setHeader('x-utf8', Buffer.from('héllo ✓', 'utf8').toString('latin1'));
		res.setHeader('x-latin1', 'café');
		res.setHeader('set-cookie', ['a=1', 'b=2']);
		res.setHeader('x-dup', ['1', '2']);
		res.end(JSON.stringify({ u: codes(req.headers['x-utf8']), l: codes(ctx.headers['x-latin1']),
			c: req.headers['set-cookie'] || null, d: req.headers['x-dup'] }));
	};`)
	req.Headers["x-utf8"] = []string{utf8Bytes}
	req.Headers["x-latin1"] = []string{latin1}
	req.Headers["x-dup"] = []string{"1", "2"}
	resp := h.do(t, req)
	if resp.Status != 200 {
		t.Fatalf("status %d %s", resp.Status, resp.Body)
	}
	for name, want := range map[string]string{"x-utf8": utf8Bytes, "x-latin1": latin1, "set-cookie": "a=1|b=2", "x-dup": "1|2"} {
		if got := strings.Join(resp.Headers[name], "|"); got != want {
			t.Errorf("response %s = %q, want %q", name, got, want)
		}
	}
	var seen struct {
		U, L []int
		D    string
	}
	if err := json.Unmarshal(resp.Body, &seen); err != nil {
		t.Fatalf("%s: %v", resp.Body, err)
	}
	codes := func(s string) []int {
		out := []int{}
		for i := 0; i < len(s); i++ {
			out = append(out, int(s[i]))
		}
		return out
	}
	if !equalInts(seen.U, codes(utf8Bytes)) || !equalInts(seen.L, codes(latin1)) || seen.D != "1, 2" {
		t.Fatalf("the webtask saw %+v, want u=%v l=%v d=\"1, 2\"", seen, codes(utf8Bytes), codes(latin1))
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A large 1/2-arity result travels as a stream (bounded lines) and keeps
// its single JSON body.
func TestLargeCallbackResultStreams(t *testing.T) {
	h := startAgent(t)
	resp := h.do(t, newReq(`module.exports = function (cb) { cb(null, { s: 'x'.repeat(1 << 20) }); };`))
	var v struct{ S string }
	if resp.Status != 200 || json.Unmarshal(resp.Body, &v) != nil || len(v.S) != 1<<20 || resp.Headers["content-type"][0] != "application/json" {
		t.Fatalf("status %d, %d bytes, headers %v", resp.Status, len(resp.Body), resp.Headers)
	}
}

// slowReader yields its bytes in small pieces.
type slowReader struct {
	b    []byte
	read int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 7000)], r.b)
	r.b = r.b[n:]
	r.read += n
	return n, nil
}

// A body larger than the invoke carries streams into a 3-arity req (the
// webtask reads it at its own pace) and is gathered whole for a parsed
// ctx.body of a 2-arity webtask.
func TestRequestBodyStreams(t *testing.T) {
	h := startAgent(t)
	body := make([]byte, 3<<20)
	for i := range body {
		body[i] = byte(i % 253)
	}
	req := newReq(`const crypto = require('crypto');
	module.exports = function (ctx, req, res) {
		const hash = crypto.createHash('sha256');
		let n = 0;
		req.on('data', (b) => { hash.update(b); n += b.length; });
		req.on('end', () => res.end(JSON.stringify({ n: n, sha: hash.digest('hex') })));
	};`)
	req.Method = "POST"
	req.Body = body[:1000]
	req.BodyMore = &slowReader{b: body[1000:]}
	resp := h.do(t, req)
	var got struct {
		N   int
		Sha string
	}
	if err := json.Unmarshal(resp.Body, &got); err != nil || got.N != len(body) || got.Sha != hashOf(string(body)) {
		t.Fatalf("3-arity read %s (%v), want %d bytes sha %s", resp.Body, err, len(body), hashOf(string(body)))
	}

	doc := `{"pad":"` + strings.Repeat("p", 200<<10) + `","v":42}`
	req = newReq(`module.exports = function (ctx, cb) { cb(null, { v: ctx.body && ctx.body.v, n: ctx.body_raw.length }); };`)
	req.Method, req.PB = "POST", 2
	req.Headers["content-type"] = []string{"application/json"}
	req.Body = []byte(doc[:100])
	req.BodyMore = &slowReader{b: []byte(doc[100:])}
	resp = h.do(t, req)
	if string(resp.Body) != `{"v":42,"n":`+strconv.Itoa(len(doc))+`}` {
		t.Fatalf("2-arity got %s", resp.Body)
	}
}

// failingReader fails after some bytes (a body past --max-body-bytes).
type failingReader struct{ n int }

var errTooBig = errors.New("too big")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errTooBig
	}
	n := min(len(p), r.n)
	r.n -= n
	return n, nil
}

// A streamed body that fails aborts the invocation: Do returns the error
// (ErrRequestBody), and the agent keeps serving.
func TestRequestBodyFailureAborts(t *testing.T) {
	h := startAgent(t)
	req := newReq(`module.exports = function (ctx, req, res) {
		req.on('data', () => {});
		req.on('end', () => res.end('complete?'));
	};`)
	req.Method = "POST"
	req.BodyMore = &failingReader{n: 500 << 10}
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	resp, err := h.client.Do(ctx, req)
	if !errors.Is(err, agent.ErrRequestBody) || !errors.Is(err, errTooBig) {
		t.Fatalf("Do: %+v %v, want ErrRequestBody wrapping the read error", resp, err)
	}
	if r := h.do(t, newReq(`module.exports = function (cb) { cb(null, 1); };`)); r.Status != 200 {
		t.Fatalf("next call %d", r.Status)
	}
}

// AfterClose runs its callback once, at the first Close, or at once on a
// closed stream.
func TestStreamAfterClose(t *testing.T) {
	h := startAgent(t)
	resp := doStream(t, h, newReq(`module.exports = function (ctx, req, res) { res.write('x'); };`))
	calls := 0
	resp.Stream.AfterClose(func() { calls++ })
	if calls != 0 {
		t.Fatal("AfterClose ran before Close")
	}
	resp.Stream.Close()
	resp.Stream.Close()
	if calls != 1 {
		t.Fatalf("callback ran %d times, want 1", calls)
	}
	late := false
	resp.Stream.AfterClose(func() { late = true })
	if !late {
		t.Fatal("AfterClose on a closed stream did not run at once")
	}
}

// Pending: false while the next piece is not there, true while pieces or
// the clean end are, false once the stream failed.
func TestStreamPending(t *testing.T) {
	h := startAgent(t)
	resp := doStream(t, h, newReq(`module.exports = function (ctx, req, res) {
		res.write('one;');
		global.releasePending = function () { res.write('two;'); res.end('three'); };
	};`))
	if first, err := resp.Stream.Next(); err != nil || string(first) != "one;" {
		t.Fatalf("first chunk %q %v", first, err)
	}
	if resp.Stream.Pending() {
		t.Fatal("Pending with nothing sent after the first chunk")
	}
	// The release call's result comes after the chunks and the end it
	// sent, in the same write: they are in the stream when it returns.
	h.do(t, newReq(`module.exports = function (cb) { global.releasePending(); cb(); };`))
	for _, want := range []string{"two;", "three"} {
		if !resp.Stream.Pending() {
			t.Fatalf("not Pending before %q, which the agent sent", want)
		}
		if got, err := resp.Stream.Next(); err != nil || string(got) != want {
			t.Fatalf("chunk %q %v, want %q", got, err, want)
		}
	}
	if !resp.Stream.Pending() {
		t.Fatal("not Pending at the end the agent sent")
	}
	if _, err := resp.Stream.Next(); err != io.EOF {
		t.Fatalf("after the last chunk: %v, want io.EOF", err)
	}

	// A stream that failed is not pending, even once the agent has
	// acknowledged the abort with its end (the acknowledgment comes before
	// the result of a call sent after the abort).
	failed := doStream(t, h, newReq(`module.exports = function (ctx, req, res) { res.write('x'); };`))
	failed.Stream.Abort(errors.New("cut off"))
	h.do(t, newReq(`module.exports = function (cb) { cb(); };`))
	if failed.Stream.Pending() {
		t.Fatal("Pending after the stream failed: what was written before must be flushed")
	}
}
