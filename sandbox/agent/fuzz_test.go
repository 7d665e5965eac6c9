package agent

import (
	"reflect"
	"testing"
)

// FuzzParseResult feeds arbitrary lines to the fast "result" decoder: it
// never panics, and a line it accepts is one encoding/json decodes to the
// same id, status, headers and body (the fast path may decline anything,
// never read a line differently).
func FuzzParseResult(f *testing.F) {
	for _, s := range []string{
		`{"op":"result","id":7,"status":200,"headers":{"content-type":["application/json"]},"body":"eyJoZWxsbyI6IndvcmxkIn0="}` + "\n",
		`{"op":"result","id":1,"status":204,"headers":{},"body":""}` + "\n",
		`{"op":"result","id":3,"status":100,"headers":{"a":["1"],"a":["2"]},"body":"QUJD"}` + "\n",
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
	f.Fuzz(func(t *testing.T, line []byte) {
		id, status, hdr, body, err := parseResult(line)
		m, stdErr := decodeStd(line)
		if err != nil {
			return // left to encoding/json, whatever it says
		}
		if stdErr != nil {
			t.Fatalf("fast path accepted a line encoding/json refuses (%v): %q", stdErr, line)
		}
		if m.Op != "result" || id != m.ID || status != m.Status || !reflect.DeepEqual(hdr, m.Header) || !reflect.DeepEqual(body, m.Body) && !(len(body) == 0 && len(m.Body) == 0) {
			t.Fatalf("%q:\n fast %d %d %#v %#v\n  std %q %d %d %#v %#v", line, id, status, hdr, body, m.Op, m.ID, m.Status, m.Header, m.Body)
		}
	})
}
