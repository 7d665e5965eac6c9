package daemon_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// streamDeadline bounds every wait of the streaming tests.
const streamDeadline = 60 * time.Second

// openStream starts a call and returns the response with its body unread.
func openStream(t *testing.T, env *Env, path string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", env.Base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	client := &http.Client{Timeout: streamDeadline}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// signalCode writes chunk 1, then waits (bounded) for the test to put
// {"go":true} in its storage, which the test does only once it has read
// chunk 1, then writes the rest: a buffering path cannot pass.
const signalCode = `module.exports = function (ctx, req, res) {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.write('chunk 1\n');
  var tries = 0;
  (function poll() {
    ctx.storage.get(function (err, d) {
      if (!err && d && d.go) {
        res.write('chunk 2\n');
        res.end('chunk 3\n');
        return;
      }
      if (++tries > 1000) return res.end('no signal\n');
      setTimeout(poll, 10);
    });
  })();
};`

func TestStreamingChunksArriveAsWritten(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	env.PutWebtask("str", "signal", signalCode, nil)
	resp := openStream(t, env, "/api/run/str/signal")
	if resp.StatusCode != 200 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("status %d, transfer encoding %v; want 200 chunked", resp.StatusCode, resp.TransferEncoding)
	}
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || first != "chunk 1\n" {
		t.Fatalf("first line %q %v", first, err)
	}
	MustStatus(t, env.Call("PUT", "/api/webtask/str/signal/data", env.Master, map[string]any{"data": `{"go":true}`}), 200, "PUT data")
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "chunk 2\nchunk 3\n" {
		t.Fatalf("rest %q %v", rest, err)
	}
}

// bigCode streams 200 MB in 64 KiB pieces, respecting backpressure.
const bigCode = `module.exports = function (ctx, req, res) {
  var piece = Buffer.alloc(64 * 1024, 'x'), left = 200 * 1000 * 1000;
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  (function more() {
    while (left > 0) {
      var n = Math.min(left, piece.length);
      left -= n;
      if (!res.write(n === piece.length ? piece : piece.subarray(0, n))) return res.once('drain', more);
    }
    res.end();
  })();
};`

// rssBytes is this process's resident set (the daemon runs in it).
func rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func TestStreaming200MBSlowReaderBoundedMemory(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	putLimits(t, env, "big", map[string]any{"max_response_bytes": 300 << 20})
	env.PutWebtask("big", "stream", bigCode, nil)
	env.PutWebtask("nb", "hello", `module.exports = function (cb) { cb(null, 'hi'); };`, nil)
	MustStatus(t, env.Call("GET", "/api/run/nb/hello", "", nil), 200, "neighbour")

	runtime.GC()
	debug.FreeOSMemory() // a baseline without earlier tests' garbage
	rss0 := rssBytes(t)
	resp := openStream(t, env, "/api/run/big/stream")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	sb := sandboxOf(t, env, "big")
	var maxRSS int64
	var maxCg uint64
	sample := func() {
		if r := rssBytes(t); r > maxRSS {
			maxRSS = r
		}
		ir := env.Call("GET", "/api/admin/sandboxes/"+sb.ID, env.Master, nil)
		MustStatus(t, ir, 200, "inspect")
		var info types.SandboxInfo
		ir.JSON(t, &info)
		if info.Cgroup != nil && info.Cgroup.MemoryBytes > maxCg {
			maxCg = info.Cgroup.MemoryBytes
		}
		MustStatus(t, env.Call("GET", "/api/run/nb/hello", "", nil), 200, "neighbour during the stream")
	}
	// A slow reader: 1 MiB at a time with a pause (pacing, not
	// synchronisation), so the webtask could outrun it a hundredfold.
	var total int64
	buf := make([]byte, 1<<20)
	for i := 0; ; i++ {
		n, err := io.ReadFull(resp.Body, buf)
		total += int64(n)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", total, err)
		}
		if bytes.IndexFunc(buf[:n], func(r rune) bool { return r != 'x' }) >= 0 {
			t.Fatalf("unexpected bytes after %d", total)
		}
		if i%20 == 0 {
			sample()
		}
		time.Sleep(3 * time.Millisecond)
	}
	if total != 200*1000*1000 {
		t.Fatalf("read %d bytes, want 200000000", total)
	}
	sample()
	t.Logf("200 MB streamed: daemon RSS %d MiB at start, %d MiB at most; sandbox cgroup memory at most %d MiB",
		rss0>>20, maxRSS>>20, maxCg>>20)
	// Buffering either side would hold 200 MB (more in base64).
	if grew := maxRSS - rss0; grew > 120<<20 {
		t.Errorf("daemon RSS grew by %d MiB during the stream, want < 120 MiB", grew>>20)
	}
	if maxCg > 160<<20 {
		t.Errorf("sandbox memory reached %d MiB, want < 160 MiB", maxCg>>20)
	}
}

// closeCode streams until its caller goes away, then records the 'close'
// it saw in its storage; ?mode=hello answers at once.
const closeCode = `module.exports = function (ctx, req, res) {
  if (ctx.query.mode === 'hello') return res.end('hello');
  res.on('close', function () {
    ctx.storage.set({ closed: true, ended: res.writableEnded }, { force: 1 }, function () {});
  });
  res.write('first\n');
  var t = setInterval(function () { res.write('more\n'); }, 20);
  res.on('close', function () { clearInterval(t); });
};`

func TestStreamingCallerDisconnectAbortsWebtask(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	env.PutWebtask("cls", "w", closeCode, nil)
	resp := openStream(t, env, "/api/run/cls/w")
	br := bufio.NewReader(resp.Body)
	if l, err := br.ReadString('\n'); err != nil || l != "first\n" {
		t.Fatalf("first line %q %v", l, err)
	}
	resp.Body.Close() // the caller goes away mid-stream
	var doc struct {
		Closed bool `json:"closed"`
		Ended  bool `json:"ended"`
	}
	WaitFor(t, "the webtask to record close", streamDeadline, func() bool {
		r := env.Call("GET", "/api/webtask/cls/w/data", env.Master, nil)
		MustStatus(t, r, 200, "GET data")
		var d struct {
			Data string `json:"data"`
		}
		r.JSON(t, &d)
		return json.Unmarshal([]byte(d.Data), &doc) == nil && doc.Closed
	})
	if doc.Ended {
		t.Fatal("close after a disconnect says the response ended")
	}
	r := env.Call("GET", "/api/run/cls/w?mode=hello", "", nil)
	MustStatus(t, r, 200, "next call")
	if string(r.Body) != "hello" || r.Header.Get("x-wt-sandbox") != "warm" {
		t.Fatalf("next call: %q served %q, want hello from the warm sandbox", r.Body, r.Header.Get("x-wt-sandbox"))
	}
}

// A stream past the response budget is cut off: the connection drops
// without the final chunk.
func TestStreamingPastBudgetIsCutOff(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	putLimits(t, env, "cut", map[string]any{"max_response_bytes": 100 << 10})
	env.PutWebtask("cut", "w", `module.exports = function (ctx, req, res) {
	  var piece = Buffer.alloc(16 * 1024, 'y'), n = 0;
	  (function more() {
	    while (n++ < 64) { if (!res.write(piece)) return res.once('drain', more); }
	    res.end();
	  })();
	};`, nil)
	resp := openStream(t, env, "/api/run/cut/w")
	b, err := io.ReadAll(resp.Body)
	if err == nil || len(b) > 100<<10 {
		t.Fatalf("read %d bytes, err %v; want an error within the 100 KiB budget", len(b), err)
	}
}

// headerCode shows how the request headers reached it (as the char codes
// of Node's latin1 strings) and answers headers from raw bytes.
const headerCode = `module.exports = function (ctx, req, res) {
  var codes = function (s) { return Array.from(String(s), function (c) { return c.charCodeAt(0); }); };
  res.setHeader('x-utf8', Buffer.from('héllo ✓', 'utf8').toString('latin1'));
  res.setHeader('x-latin1', 'café');
  res.setHeader('set-cookie', ['a=1; Path=/', 'b=2']);
  res.setHeader('x-dup', ['1', '2']);
  res.end(JSON.stringify({ u: codes(req.headers['x-utf8']), l: codes(ctx.headers['x-latin1']), d: req.headers['x-dup'] }));
};`

func TestHeaderBytesRoundTripE2E(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	env.PutWebtask("hdr", "w", headerCode, nil)
	utf8Bytes, latin1 := "h\xc3\xa9llo \xe2\x9c\x93", "caf\xe9"
	resp := openStream(t, env, "/api/run/hdr/w", "X-Utf8", utf8Bytes, "X-Latin1", latin1, "X-Dup", "1", "X-Dup", "2")
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %q %v", resp.StatusCode, body, err)
	}
	for name, want := range map[string][]string{"X-Utf8": {utf8Bytes}, "X-Latin1": {latin1}, "Set-Cookie": {"a=1; Path=/", "b=2"}, "X-Dup": {"1", "2"}} {
		if got := resp.Header[name]; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("response %s = %q, want %q", name, got, want)
		}
	}
	if ct, ok := resp.Header["Content-Type"]; ok {
		t.Errorf("Content-Type %q reached the caller; the webtask set none", ct)
	}
	var seen struct {
		U, L []int
		D    string
	}
	if err := json.Unmarshal(body, &seen); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	codes := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			b.WriteString(strconv.Itoa(int(s[i])) + ",")
		}
		return b.String()
	}
	ints := func(v []int) string {
		var b strings.Builder
		for _, c := range v {
			b.WriteString(strconv.Itoa(c) + ",")
		}
		return b.String()
	}
	if ints(seen.U) != codes(utf8Bytes) || ints(seen.L) != codes(latin1) || seen.D != "1, 2" {
		t.Fatalf("the webtask saw %+v; want u=%s l=%s d=\"1, 2\"", seen, codes(utf8Bytes), codes(latin1))
	}
}

// uploadCode hashes the request stream as it reads it.
const uploadCode = `var crypto = require('crypto');
module.exports = function (ctx, req, res) {
  var hash = crypto.createHash('sha256'), n = 0;
  req.on('data', function (b) { hash.update(b); n += b.length; });
  req.on('end', function () { res.end(JSON.stringify({ n: n, sha: hash.digest('hex') })); });
};`

// A 5 MiB upload streams into a 3-arity webtask; a JSON body larger than
// the invoke carries is parsed whole for a 2-arity one; a chunked body
// past --max-body-bytes is refused with 413 (a Content-Length past it
// before anything runs, as before).
func TestRequestBodiesStream(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.API.MaxBodyBytes = 6 << 20
	env := Start(t, cfg)
	env.PutWebtask("up", "hash", uploadCode, nil)
	env.PutWebtask("up", "parse", `module.exports = function (ctx, cb) { cb(null, { v: ctx.body && ctx.body.v, n: ctx.body_raw && ctx.body_raw.length }); };`, nil)

	body := make([]byte, 5<<20)
	for i := range body {
		body[i] = byte(i % 251)
	}
	sum := sha256.Sum256(body)
	// An io.Reader the client cannot size: chunked, no Content-Length.
	post := func(path string, r io.Reader, ct string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest("POST", env.Base+path, r)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", ct)
		resp, err := (&http.Client{Timeout: streamDeadline}).Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	st, b := post("/api/run/up/hash", io.MultiReader(bytes.NewReader(body)), "application/octet-stream")
	var got struct {
		N   int
		Sha string
	}
	if st != 200 || json.Unmarshal(b, &got) != nil || got.N != len(body) || got.Sha != hex.EncodeToString(sum[:]) {
		t.Fatalf("5 MiB upload: %d %s; want n=%d sha=%x", st, b, len(body), sum)
	}

	doc := `{"pad":"` + strings.Repeat("p", 300<<10) + `","v":42}`
	// webtask_pb=1: parsed whatever the stored pb (its default is issue 9's
	// other half).
	st, b = post("/api/run/up/parse?webtask_pb=1", strings.NewReader(doc), "application/json")
	if st != 200 || string(b) != `{"v":42,"n":`+strconv.Itoa(len(doc))+`}` {
		t.Fatalf("parsed body: %d %s", st, b)
	}

	// Past the limit the daemon answers 413 while the caller still
	// uploads, then closes: the caller reads the answer as it writes (a
	// client that only reads once done writing may see the reset instead).
	big := io.MultiReader(bytes.NewReader(body), bytes.NewReader(body))
	st, b = postWhileReading(t, env, "/api/run/up/hash", big, -1)
	if st != 413 || !strings.Contains(string(b), `"code":413`) {
		t.Fatalf("10 MiB chunked upload: %d %s, want 413", st, b)
	}
	st, b = postWhileReading(t, env, "/api/run/up/hash", strings.NewReader(strings.Repeat("z", 7<<20)), 7<<20)
	if st != 413 {
		t.Fatalf("7 MiB upload with Content-Length: %d %s, want 413", st, b)
	}
	// The sandbox still serves.
	st, b = post("/api/run/up/hash", strings.NewReader("abc"), "text/plain")
	if st != 200 || !strings.Contains(string(b), `"n":3`) {
		t.Fatalf("after the refusals: %d %s", st, b)
	}
}

// A streamed response may last longer than --read-timeout, which bounds
// sending the request only (net/http lifts the read deadline once the
// request is read).
func TestStreamingOutlastsReadTimeout(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.HTTP.ReadHeaderTimeout, cfg.HTTP.ReadTimeout = time.Second, time.Second
	env := Start(t, cfg)
	env.PutWebtask("long", "w", `module.exports = function (ctx, req, res) {
	  var n = 0, t = setInterval(function () {
	    res.write('tick ' + n + '\n');
	    if (++n === 10) { clearInterval(t); res.end('done\n'); }
	  }, 250);
	};`, nil)
	resp := openStream(t, env, "/api/run/long/w")
	b, err := io.ReadAll(resp.Body)
	if err != nil || !strings.HasSuffix(string(b), "tick 9\ndone\n") {
		t.Fatalf("after %q: %v; want ten ticks over 2.5 s, past the 1 s read timeout", b, err)
	}
}

// postWhileReading POSTs body on a raw connection (chunked when
// length < 0) and reads the answer while it still writes.
func postWhileReading(t *testing.T, env *Env, path string, body io.Reader, length int64) (int, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(env.Base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(streamDeadline))
	go func() {
		w := bufio.NewWriter(conn)
		if length >= 0 {
			fmt.Fprintf(w, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", path, length)
			_, _ = io.Copy(w, body)
			_ = w.Flush()
			return
		}
		fmt.Fprintf(w, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n", path)
		buf := make([]byte, 64<<10)
		for {
			n, err := body.Read(buf)
			if n > 0 {
				fmt.Fprintf(w, "%x\r\n", n)
				w.Write(buf[:n])
				w.WriteString("\r\n")
			}
			if err != nil {
				break
			}
		}
		w.WriteString("0\r\n\r\n")
		_ = w.Flush() // fails once the daemon closed: expected
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
