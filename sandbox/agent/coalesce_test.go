package agent_test

import (
	"bufio"
	"encoding/json"
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
