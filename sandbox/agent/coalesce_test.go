package agent_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestOneWritePerTick: everything the agent sends in one tick (two log
// lines and the result of an invocation; a streamed response's head and
// first chunk) leaves in one write, which a reader of the socketpair gets
// in one read, each message whole and in order.
func TestOneWritePerTick(t *testing.T) {
	conn, _ := startRawAgent(t)
	_ = conn.SetReadDeadline(time.Now().Add(testDeadline))
	br := bufio.NewReader(conn)
	if line, err := br.ReadBytes('\n'); err != nil || !strings.Contains(string(line), `"op":"ready"`) {
		t.Fatalf("ready: %q %v", line, err)
	}
	if br.Buffered() != 0 {
		t.Fatalf("%d bytes after ready", br.Buffered())
	}
	for _, tc := range []struct {
		id   int
		code string
		ops  []string
	}{
		{7, `module.exports = function (cb) { console.log('a'); console.log('b'); cb(null, 'ok'); }`,
			[]string{"log", "log", "result"}},
		{8, `module.exports = function (ctx, req, res) { res.write('first'); globalThis.finish = () => res.end('last'); }`,
			[]string{"head", "chunk"}},
		// Ends the stream of 8 and answers: the rest of 8 and the result
		// of 9 in one write.
		{9, `module.exports = function (cb) { globalThis.finish(); cb(null, 'ok'); }`,
			[]string{"chunk", "end", "result"}},
	} {
		req := newReq(tc.code)
		b, _ := json.Marshal(map[string]any{"op": "invoke", "id": tc.id, "cap": "c", "req": req})
		if _, err := conn.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
		// One read of the socket: the agent's whole first write.
		buf := make([]byte, 64<<10)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(buf[:n]), "\n"), "\n")
		if len(lines) != len(tc.ops) || !strings.HasSuffix(string(buf[:n]), "\n") {
			t.Fatalf("one read got %q, want the messages %v", buf[:n], tc.ops)
		}
		for i, l := range lines {
			var m struct {
				Op string `json:"op"`
				ID int    `json:"id"`
			}
			want := tc.id
			if tc.id == 9 && i < 2 {
				want = 8
			}
			if err := json.Unmarshal([]byte(l), &m); err != nil || m.Op != tc.ops[i] || m.ID != want {
				t.Fatalf("message %d %q (%v), want op %s of %d", i, l, err, tc.ops[i], want)
			}
		}
	}
}

// TestLargeTickInOrder: a tick that sends more than the agent coalesces
// into one write (3 MiB of log lines) still delivers every message whole
// and in order, then the result.
func TestLargeTickInOrder(t *testing.T) {
	h := startAgent(t)
	req := newReq(`module.exports = function (cb) {
		for (let i = 0; i < 48; i++) console.log(String(i).padStart(2, '0') + 'x'.repeat(64 * 1024));
		cb(null, 'done');
	}`)
	req.LogLimitBytes = 0
	if resp := h.do(t, req); resp.Status != 200 || string(resp.Body) != `"done"` {
		t.Fatalf("%d %s", resp.Status, resp.Body)
	}
	deadline := time.After(testDeadline)
	for i := 0; i < 48; i++ {
		select {
		case l := <-h.logc:
			want := fmt.Sprintf("%02d", i) + strings.Repeat("x", 64*1024)
			if l.Msg != want {
				t.Fatalf("log line %d: %d bytes starting %q", i, len(l.Msg), l.Msg[:min(len(l.Msg), 8)])
			}
		case <-deadline:
			t.Fatalf("only %d of 48 log lines arrived", i)
		}
	}
}
