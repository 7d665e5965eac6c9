package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// invokeMsg is the daemon -> agent invoke envelope as encoding/json sees
// it: the reference the hand-written encoder (wire.go) is checked against,
// and what the fake agent of client_test.go decodes.
type invokeMsg struct {
	Op  string   `json:"op"`
	ID  uint64   `json:"id"`
	Cap string   `json:"cap"`
	Req *Request `json:"req"`
}

// encodeStd is what the client sent before the hand-written encoder:
// json.Encoder without HTML escaping of invokeMsg.
func encodeStd(t *testing.T, id uint64, capability string, r *Request, withCode bool) []byte {
	t.Helper()
	cp := *r
	cp.Fixed = nil
	if !withCode {
		cp.Code = ""
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&invokeMsg{Op: "invoke", ID: id, Cap: capability, Req: &cp}); err != nil {
		t.Fatal(err)
	}
	// A header with a non-ASCII byte travels as {"b64": [][]byte} (what
	// encoding/json writes for bytes), in place of its strings.
	return bytes.Replace(buf.Bytes(), append([]byte(`"headers":`), mustJSON(t, cp.Headers)...),
		append([]byte(`"headers":`), mustJSON(t, wireHeaders(cp.Headers))...), 1)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// wireHeaders is the reference form of request headers on the wire.
func wireHeaders(h map[string][]string) map[string]any {
	if h == nil {
		return nil
	}
	out := map[string]any{}
	for k, vs := range h {
		ascii := true
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				ascii = ascii && v[i] < 0x80
			}
		}
		if vs == nil || ascii {
			out[k] = vs
			continue
		}
		bv := [][]byte{}
		for _, v := range vs {
			bv = append(bv, []byte(v))
		}
		out[k] = map[string][][]byte{"b64": bv}
	}
	return out
}

// wireRequests covers every field, empty and nil values, and strings that
// need escaping (control characters, quotes, HTML, non-ASCII, invalid
// UTF-8, U+2028).
// testCap is the capability of invocations in wire tests.
const testCap = "CAPABILITY234567ABCDEFGHIJ"

func wireRequests() []*Request {
	odd := "a\"b\\c\n\r\t\b\f\x00\x1f<>&\u2028\u2029é\xff日本"
	return []*Request{
		{},
		{ReqID: "r1", Container: "c", CodeHash: "h", Code: "module.exports = (cb) => cb(null, \"x\");\n", Method: "GET", URL: "/api/run/c", URLFormat: 1},
		{
			ReqID: "r-2", Container: "demo", Name: "hello", URLFormat: 1, CodeHash: "abc", Code: "x",
			Method: "POST", URL: "/api/run/demo/hello/sub?x=1&y=%20",
			Headers: map[string][]string{"host": {"127.0.0.1"}, "accept": {"*/*"}, "x-multi": {"a", "b"}, "x-empty": {}, "x-nil": nil, "z": {""}},
			Body:    []byte("{\"a\":1}\x00\xff"),
			Secrets: map[string]any{"S": "v", "N": 1.5, "nested": map[string]any{"k": []any{1, "<x>", nil}}},
			Params:  map[string]any{"p": true},
			Meta:    map[string]string{"m": "v", "a": odd},
			PB:      1, MB: 2, Token: "eyJ.abc.def", LogLimitBytes: 65536,
		},
		{ReqID: odd, Container: odd, Name: odd, CodeHash: odd, Code: odd, Method: odd, URL: odd,
			Headers: map[string][]string{odd: {odd, odd}}, Secrets: map[string]any{odd: odd}, Meta: map[string]string{odd: odd}, Token: odd},
		{Headers: map[string][]string{}, Secrets: map[string]any{}, Params: map[string]any{}, Meta: map[string]string{}, Body: []byte{}, PB: -1, MB: -7, LogLimitBytes: -1},
	}
}

func TestAppendInvokeMatchesEncodingJSON(t *testing.T) {
	for i, r := range wireRequests() {
		for _, withCode := range []bool{true, false} {
			want := encodeStd(t, uint64(i+1)*1e15, testCap, r, withCode)
			got, err := appendInvoke(nil, uint64(i+1)*1e15, testCap, r, withCode)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("request %d withCode=%v:\n got %s\nwant %s", i, withCode, got, want)
			}
			// The same with the per-webtask part pre-encoded.
			f, err := EncodeFixed(r)
			if err != nil {
				t.Fatal(err)
			}
			rf := *r
			rf.Fixed = f
			got, err = appendInvoke(nil, uint64(i+1)*1e15, testCap, &rf, withCode)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("request %d withCode=%v with Fixed (%v):\n got %s\nwant %s", i, withCode, err, got, want)
			}
		}
	}
}

func TestAppendInvokeUnencodable(t *testing.T) {
	r := &Request{Params: map[string]any{"n": math.Inf(1)}}
	var ue *json.UnsupportedValueError
	if _, err := appendInvoke(nil, 1, testCap, r, true); !errors.As(err, &ue) {
		t.Fatalf("appendInvoke: %v, want UnsupportedValueError", err)
	}
	if _, err := EncodeFixed(r); !errors.As(err, &ue) {
		t.Fatalf("EncodeFixed: %v, want UnsupportedValueError", err)
	}
}

// decodeStd is how every line was decoded before the fast path.
func decodeStd(line []byte) (m message, err error) {
	err = json.Unmarshal(line, &m)
	return m, err
}

func TestParseResultMatchesEncodingJSON(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	fast := []string{
		`{"op":"result","id":7,"status":200,"headers":{"content-type":["` + b64("application/json") + `"]},"body":"eyJoZWxsbyI6IndvcmxkIn0="}`,
		`{"op":"result","id":1,"status":204,"headers":{},"body":""}`,
		`{"op":"result","id":18446744073709551,"status":999,"headers":{"a":[],"set-cookie":["` + b64("a=1") + `","` + b64("b=2") + `"],"x":["` + b64("é日本\xff\x00") + `"],"y":[""]},"body":"AA=="}`,
		`{"op":"result","id":3,"status":100,"headers":{"a":["` + b64("1") + `"],"a":["` + b64("2") + `"]},"body":"QUJD"}`,
		`{"op":"result","id":3,"status":200,"headers":{"x-long":["` + b64(strings.Repeat("v", 300)) + `"]},"body":""}`,
	}
	for _, l := range fast {
		line := []byte(l + "\n")
		id, status, hdr, body, err := parseResult(line)
		if err != nil {
			t.Errorf("%s: not parsed by the fast path: %v", l, err)
			continue
		}
		m, err := decodeStd(line)
		if err != nil {
			t.Fatal(err)
		}
		if id != m.ID || status != m.Status || !reflect.DeepEqual(hdr, stringHeaders(m.Header)) || !reflect.DeepEqual(body, m.Body) {
			t.Errorf("%s:\n fast %d %d %#v %#v\n  std %d %d %#v %#v", l, id, status, hdr, body, m.ID, m.Status, m.Header, m.Body)
		}
	}
	// Lines the fast path must leave to encoding/json.
	slow := []string{
		`{"op":"result","id":7,"status":200,"headers":{"a":["eA\"y"]},"body":""}`,       // escape
		`{"op":"result","id":7,"status":200,"headers":{"a":["eA\u0041"]},"body":""}`,    // escape
		`{"op":"result","id":7,"status":200,"headers":{"a":["x"]},"body":""}`,           // not base64
		`{"op":"result","id":7,"status":200,"headers":{"` + "\xff" + `":[]},"body":""}`, // invalid UTF-8
		`{"op":"result","id":7,"status":200,"headers":{"a":"eA=="},"body":""}`,          // not an array
		`{"op":"result","id":7,"status":200,"headers":{},"body":"QUJD\u0041"}`,          // escaped body
		`{"op":"result","id":7,"status":200,"headers":{},"body":"!!"}`,                  // bad base64
		`{"op":"result","id":7,"status":200,"headers":{},"body":""} `,                   // trailing space
		`{"op":"result","id":7,"status":200,"headers":{},"body":"","x":1}`,              // more fields
		`{"op":"result","id":07,"status":200,"headers":{},"body":""}`,                   // leading zero
		`{"op":"result","id":7,"status":200.5,"headers":{},"body":""}`,
		`{"op":"result","id":7,"status":-1,"headers":{},"body":""}`,
		`{"op":"result","id":123456789012345678901,"status":200,"headers":{},"body":""}`,
		`{"op":"result","id":7,"status":200}`,
		`{"op":"result", "id":7,"status":200,"headers":{},"body":""}`,
		`{"op":"log","id":7,"stream":"stdout","msg":"hi"}`,
		`{"op":"result","id":7,"status":200,"headers":{"a":["b"],},"body":""}`,
	}
	for _, l := range slow {
		if _, _, _, _, err := parseResult([]byte(l + "\n")); err == nil {
			t.Errorf("fast path accepted %s", l)
		}
	}
	// Without the newline (a truncated line) nothing is accepted either.
	if _, _, _, _, err := parseResult([]byte(fast[0])); err == nil {
		t.Error("fast path accepted a line without its newline")
	}
	if _, _, _, _, err := parseResult([]byte(strings.TrimSuffix(fast[0], "}") + "\n")); err == nil {
		t.Error("fast path accepted a truncated object")
	}
}

func TestParseEndMatchesEncodingJSON(t *testing.T) {
	for _, l := range []string{`{"op":"end","id":7}`, `{"op":"end","id":18446744073709551}`} {
		line := []byte(l + "\n")
		id, err := parseEnd(line)
		if err != nil {
			t.Errorf("%s: not parsed by the fast path: %v", l, err)
			continue
		}
		if m, err := decodeStd(line); err != nil || m.Op != "end" || m.ID != id {
			t.Errorf("%s: fast %d, std %+v %v", l, id, m, err)
		}
	}
	// Lines the fast path must leave to encoding/json.
	for _, l := range []string{
		`{"op":"end","id":0}`, // no id: the slow path's protocol error
		`{"op":"end","id":07}`,
		`{"op":"end","id":7.5}`,
		`{"op":"end","id":-7}`,
		`{"op":"end","id":123456789012345678901}`,
		`{"op":"end","id":7,"x":1}`,
		`{"op":"end","id":7} `,
		`{"op":"end", "id":7}`,
		`{"op":"end","id":"7"}`,
		`{"op":"end"}`,
		`{"op":"chunk","id":7,"body":""}`,
	} {
		if _, err := parseEnd([]byte(l + "\n")); err == nil {
			t.Errorf("fast path accepted %s", l)
		}
	}
	if _, err := parseEnd([]byte(`{"op":"end","id":7}`)); err == nil {
		t.Error("fast path accepted a line without its newline")
	}
}

func BenchmarkAppendInvoke(b *testing.B) {
	r := wireRequests()[2]
	r.Secrets = nil
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = appendInvoke(buf[:0], 12345, testCap, r, false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResult(b *testing.B) {
	line := []byte(`{"op":"result","id":7,"status":200,"headers":{"content-type":["YXBwbGljYXRpb24vanNvbg=="]},"body":"eyJoZWxsbyI6IndvcmxkIn0="}` + "\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, _, err := parseResult(line); err != nil {
			b.Fatal(err)
		}
	}
}
