package agent

import (
	"context"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzParseResult feeds arbitrary lines to the fast "result" decoder: it
// never panics, and a line it accepts is one encoding/json decodes to the
// same id, status, headers (values: base64 bytes) and body (the fast path
// may decline anything, never read a line differently). The same for the
// fast "end" decoder: what it accepts decodes to an end of the same id.
func FuzzParseResult(f *testing.F) {
	for _, s := range []string{
		`{"op":"result","id":7,"status":200,"headers":{"content-type":["YXBwbGljYXRpb24vanNvbg=="]},"body":"eyJoZWxsbyI6IndvcmxkIn0="}` + "\n",
		`{"op":"result","id":7,"status":200,"headers":{"x":["aMOpbGxvIOKckw==","Y2Fm6Q=="]},"body":""}` + "\n",
		`{"op":"result","id":1,"status":204,"headers":{},"body":""}` + "\n",
		`{"op":"result","id":3,"status":100,"headers":{"a":["MQ=="],"a":["Mg=="]},"body":"QUJD"}` + "\n",
		`{"op":"result","id":7,"status":200,"headers":{"a":[]},"body":"AA=="}` + "\n",
		`{"op":"result","id":7,"status":200,"headers":{"a":["x\"y"]},"body":""}` + "\n",
		`{"op":"result","id":7,"status":200,"headers":{},"body":"QUJD\u0041"}` + "\n",
		`{"op":"result","id":7,"status":200,"headers":{},"body":"QQ"}` + "\n",
		`{"op":"result","id":18446744073709551616,"status":200,"headers":{},"body":""}` + "\n",
		`{"op":"log","id":7,"stream":"stdout","msg":"hi"}` + "\n",
		`{"op":"storage","id":7,"sid":1,"action":"get"}` + "\n",
		`{"op":"token","id":7,"sid":2,"claims":{"ten":"a"}}` + "\n",
		`{"op":"ready","pid":1,"node":"v20"}` + "\n",
		`{"op":"result","id":7,"status":200,"headers":{},"body":""}`,
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"op":"end","id":7}` + "\n"))
	f.Add([]byte(`{"op":"end","id":0}` + "\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		id, status, hdr, body, err := parseResult(line)
		m, stdErr := decodeStd(line)
		if endID, err := parseEnd(line); err == nil && (stdErr != nil || m.Op != "end" || m.ID != endID) {
			t.Fatalf("fast end path read %q as %d; encoding/json: %+v %v", line, endID, m, stdErr)
		}
		if err != nil {
			return // left to encoding/json, whatever it says
		}
		if stdErr != nil {
			t.Fatalf("fast path accepted a line encoding/json refuses (%v): %q", stdErr, line)
		}
		if m.Op != "result" || id != m.ID || status != m.Status || !reflect.DeepEqual(hdr, stringHeaders(m.Header)) || !reflect.DeepEqual(body, m.Body) && !(len(body) == 0 && len(m.Body) == 0) {
			t.Fatalf("%q:\n fast %d %d %#v %#v\n  std %q %d %d %#v %#v", line, id, status, hdr, body, m.Op, m.ID, m.Status, m.Header, m.Body)
		}
	})
}

// FuzzClientFrames plays a runtime agent that sends ready and then
// arbitrary bytes while one invocation is pending, then hangs up: the
// client never panics, the pending call ends, and the client ends within a
// bound (a malformed frame closes the channel, it never wedges it).
func FuzzClientFrames(f *testing.F) {
	for _, s := range []string{
		`{"op":"result","id":1,"status":200,"headers":{},"body":""}` + "\n",
		`{"op":"need_code","id":1}` + "\n",
		`{"op":"log","id":1,"stream":"stdout","msg":"hi"}` + "\n",
		`{"op":"storage","id":1,"sid":1,"action":"get"}` + "\n" + `{"op":"storage","id":1,"sid":2,"action":"set","data":"{}"}` + "\n",
		`{"op":"token","id":1,"sid":3,"claims":{"ten":"a"}}` + "\n",
		`{"op":"result","id":1,"status":99,"headers":{},"body":""}` + "\n",
		`{"op":"result","id":0}` + "\n",
		`{"op":"ready"}` + "\n" + `{"op":"nope"}` + "\n",
		`{"op":"result","id":2,"status":200,"headers":{},"body":""}` + "\n" + `not json` + "\n",
		`{"op":"result","id":1,"status":200,"headers":{},"body":""}`,
		`{"op":"head","id":1,"status":200,"headers":{}}` + "\n" + `{"op":"chunk","id":1,"body":"QUJD"}` + "\n" + `{"op":"end","id":1}` + "\n",
		`{"op":"head","id":1,"status":200,"headers":{}}` + "\n" + `{"op":"chunk","id":1,"body":"` + strings.Repeat("QUJD", 100000) + `"}` + "\n",
		`{"op":"req_credit","id":1,"n":5}` + "\n" + `{"op":"chunk","id":9,"body":"QQ=="}` + "\n" + `{"op":"end","id":9}` + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frames []byte) {
		ours, theirs := net.Pipe()
		c := NewClient(ours, func(LogLine) {})
		defer c.Close()
		drained := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, theirs); close(drained) }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := c.Do(ctx, &Request{ReqID: "r", Container: "c", CodeHash: "h", Code: "x", Method: "GET", URL: "/"})
			done <- err
		}()
		if _, err := theirs.Write([]byte(`{"op":"ready","pid":1,"node":"v"}` + "\n")); err != nil {
			t.Fatal(err)
		}
		_, _ = theirs.Write(frames) // the client may have closed the channel already
		theirs.Close()
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the client did not end after its agent hung up")
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the pending call did not end after the channel closed")
		}
		c.Close()
		<-drained
	})
}
