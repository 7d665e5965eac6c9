package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// The hot path of the protocol is encoded and decoded by hand: the invoke
// message's fixed fields are appended directly (encoding/json walks the
// Request by reflection, about a third of the daemon's protocol cost), and
// a "result" line in the exact shape the agent writes is parsed without
// reflection. Both produce what encoding/json would: the invoke message is
// byte for byte what json.Encoder (SetEscapeHTML(false)) writes for
// {"op":"invoke","id":…,"req":Request}, and any line the fast parser does not fully recognise is
// decoded by encoding/json instead. wire_test.go checks both against
// encoding/json.

// Fixed is the pre-encoded per-webtask part of an invoke message: Secrets,
// Params, Meta, PB, MB and Token. Build it once per webtask version with
// EncodeFixed and set Request.Fixed; the client then splices it instead of
// encoding those fields on every call.
type Fixed struct {
	b []byte // `,"secrets":...,"pb":0,"mb":0,"token":"..."`, as encoding/json encodes them
}

// EncodeFixed pre-encodes r's per-webtask fields (Secrets, Params, Meta,
// PB, MB, Token). It fails like Do would on an unencodable value.
func EncodeFixed(r *Request) (*Fixed, error) {
	b, err := appendFixed(nil, r)
	if err != nil {
		return nil, err
	}
	return &Fixed{b: slices.Clip(b)}, nil
}

// appendInvoke appends one invoke message line for req (with or without
// its code) and the invocation's capability, "\n" terminated.
func appendInvoke(b []byte, id uint64, capability string, r *Request, withCode bool) ([]byte, error) {
	b = append(b, `{"op":"invoke","id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"cap":`...)
	b = appendString(b, capability)
	b = append(b, `,"req":{"req_id":`...)
	b = appendString(b, r.ReqID)
	b = append(b, `,"container":`...)
	b = appendString(b, r.Container)
	if r.Name != "" {
		b = append(b, `,"jtn":`...)
		b = appendString(b, r.Name)
	}
	b = append(b, `,"url_format":`...)
	b = strconv.AppendInt(b, int64(r.URLFormat), 10)
	b = append(b, `,"code_hash":`...)
	b = appendString(b, r.CodeHash)
	if withCode && r.Code != "" {
		b = append(b, `,"code":`...)
		b = appendString(b, r.Code)
		// Modules and extensions matter only where the code is compiled.
		if len(r.Modules) > 0 {
			b = append(b, `,"modules":`...)
			b = appendStringMap(b, r.Modules)
		}
		if len(r.Extensions) > 0 {
			b = append(b, `,"extensions":`...)
			b = appendStringMap(b, r.Extensions)
		}
	}
	b = append(b, `,"method":`...)
	b = appendString(b, r.Method)
	b = append(b, `,"url":`...)
	b = appendString(b, r.URL)
	b = append(b, `,"headers":`...)
	b = appendHeaders(b, r.Headers)
	if len(r.Body) > 0 {
		b = append(b, `,"body":"`...)
		b = base64.StdEncoding.AppendEncode(b, r.Body)
		b = append(b, '"')
	}
	if r.BodyMore != nil {
		b = append(b, `,"body_more":true`...)
	}
	if r.Fixed != nil {
		b = append(b, r.Fixed.b...)
	} else {
		var err error
		if b, err = appendFixed(b, r); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"log_limit":`...)
	b = strconv.AppendInt(b, int64(r.LogLimitBytes), 10)
	return append(b, "}}\n"...), nil
}

// appendFixed appends the per-webtask fields, each with its leading comma.
func appendFixed(b []byte, r *Request) ([]byte, error) {
	var err error
	if len(r.Secrets) > 0 {
		b = append(b, `,"secrets":`...)
		if b, err = appendJSON(b, r.Secrets); err != nil {
			return nil, err
		}
	}
	if len(r.Params) > 0 {
		b = append(b, `,"params":`...)
		if b, err = appendJSON(b, r.Params); err != nil {
			return nil, err
		}
	}
	if len(r.Meta) > 0 {
		b = append(b, `,"meta":`...)
		b = appendStringMap(b, r.Meta)
	}
	b = append(b, `,"pb":`...)
	b = strconv.AppendInt(b, int64(r.PB), 10)
	b = append(b, `,"mb":`...)
	b = strconv.AppendInt(b, int64(r.MB), 10)
	if r.Token != "" {
		b = append(b, `,"token":`...)
		b = appendString(b, r.Token)
	}
	return b, nil
}

// sortedKeys returns m's keys in encoding/json's order (sorted), in buf
// when it is large enough.
func sortedKeys[V any](buf []string, m map[string]V) []string {
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func appendHeaders(b []byte, h map[string][]string) []byte {
	if h == nil {
		return append(b, "null"...)
	}
	var buf [16]string
	b = append(b, '{')
	for i, k := range sortedKeys(buf[:], h) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		v := h[k]
		if v == nil {
			b = append(b, "null"...)
			continue
		}
		// ASCII values are JSON strings (exact: one char per byte); a
		// header with any other byte sends its values as bytes, base64.
		bin := !allASCII(v)
		if bin {
			b = append(b, `{"b64":`...)
		}
		b = append(b, '[')
		for j, s := range v {
			if j > 0 {
				b = append(b, ',')
			}
			if bin {
				b = appendBase64(b, s)
			} else {
				b = appendString(b, s)
			}
		}
		b = append(b, ']')
		if bin {
			b = append(b, '}')
		}
	}
	return append(b, '}')
}

// allASCII reports whether every byte of every value is below 0x80.
func allASCII(vs []string) bool {
	for _, s := range vs {
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf {
				return false
			}
		}
	}
	return true
}

// appendBase64 appends the bytes of s as a base64 JSON string (what
// encoding/json writes for a []byte).
func appendBase64(b []byte, s string) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, unsafe.Slice(unsafe.StringData(s), len(s)))
	return append(b, '"')
}

func appendStringMap(b []byte, m map[string]string) []byte {
	var buf [16]string
	b = append(b, '{')
	for i, k := range sortedKeys(buf[:], m) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, m[k])
	}
	return append(b, '}')
}

// jsonEnc is an encoding/json encoder without HTML escaping, as the
// client has always encoded with.
type jsonEnc struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var jsonEncPool = sync.Pool{New: func() any {
	e := &jsonEnc{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

// appendJSON appends v as encoding/json encodes it (no HTML escaping).
func appendJSON(b []byte, v any) ([]byte, error) {
	e := jsonEncPool.Get().(*jsonEnc)
	e.buf.Reset()
	err := e.enc.Encode(v)
	if err == nil {
		out := e.buf.Bytes()
		b = append(b, out[:len(out)-1]...) // without Encode's "\n"
	}
	if e.buf.Cap() <= 64<<10 {
		jsonEncPool.Put(e)
	}
	return b, err
}

// appendString appends s as a JSON string, exactly as encoding/json does
// without HTML escaping. Plain ASCII (the usual header, URL, id and token)
// is copied in one piece; other strings are escaped byte by byte, and
// non-ASCII is left to encoding/json (invalid UTF-8, U+2028/U+2029).
func appendString(b []byte, s string) []byte {
	i := 0
	for i < len(s) {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			break
		}
		i++
	}
	if i == len(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	for j := i; j < len(s); j++ {
		if s[j] >= utf8.RuneSelf {
			out, _ := appendJSON(b, s) // a string always encodes
			return out
		}
	}
	b = append(b, '"')
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c >= 0x20:
			b = append(b, c)
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
	}
	return append(b, '"')
}

// Line prefixes of the agent's messages that have a fast path.
const (
	resultPrefix = `{"op":"result","id":`
	headPrefix   = `{"op":"head","id":`
	chunkPrefix  = `{"op":"chunk","id":`
	endPrefix    = `{"op":"end","id":`
)

var errNotFast = errors.New("not a fast-path line")

// parseResult parses a "result" line in the exact shape the agent writes (rootfs/agent/result.js):
//
//	{"op":"result","id":N,"status":S,"headers":{"k":["<base64>",...],...},"body":"<base64>"}\n
//
// with names free of escapes. Anything else returns errNotFast and is
// left to encoding/json, so the fast path never accepts a line that
// encoding/json would read differently.
func parseResult(line []byte) (id uint64, status int, hdr map[string][]string, body []byte, err error) {
	p := wireParser{b: line}
	if !p.lit(resultPrefix) {
		return 0, 0, nil, nil, errNotFast
	}
	id, status, hdr, ok := p.idStatusHeaders()
	if !ok || !p.lit(`,"body":`) {
		return 0, 0, nil, nil, errNotFast
	}
	body, ok = p.base64()
	if !ok || !p.lit("}\n") || p.i != len(p.b) {
		return 0, 0, nil, nil, errNotFast
	}
	return id, status, hdr, body, nil
}

// parseHead parses a "head" line in the exact shape the agent writes (rootfs/agent/stream.js):
//
//	{"op":"head","id":N,"status":S,"headers":{"k":["<base64>",...],...}}\n
func parseHead(line []byte) (id uint64, status int, hdr map[string][]string, err error) {
	p := wireParser{b: line}
	if !p.lit(headPrefix) {
		return 0, 0, nil, errNotFast
	}
	id, status, hdr, ok := p.idStatusHeaders()
	if !ok || !p.lit("}\n") || p.i != len(p.b) {
		return 0, 0, nil, errNotFast
	}
	return id, status, hdr, nil
}

// parseChunk parses a "chunk" line in the exact shape the agent writes (rootfs/agent/stream.js):
//
//	{"op":"chunk","id":N,"body":"<base64>"}\n
func parseChunk(line []byte) (id uint64, body []byte, err error) {
	p := wireParser{b: line}
	if !p.lit(chunkPrefix) {
		return 0, nil, errNotFast
	}
	id, ok := p.uint()
	if !ok || !p.lit(`,"body":`) {
		return 0, nil, errNotFast
	}
	body, ok = p.base64()
	if !ok || !p.lit("}\n") || p.i != len(p.b) {
		return 0, nil, errNotFast
	}
	return id, body, nil
}

// parseEnd parses an "end" line in the exact shape the agent writes (rootfs/agent/stream.js):
//
//	{"op":"end","id":N}\n
//
// with N > 0 (an "end" without an id is the slow path's protocol error).
func parseEnd(line []byte) (id uint64, err error) {
	p := wireParser{b: line}
	if !p.lit(endPrefix) {
		return 0, errNotFast
	}
	id, ok := p.uint()
	if !ok || id == 0 || !p.lit("}\n") || p.i != len(p.b) {
		return 0, errNotFast
	}
	return id, nil
}

// idStatusHeaders reads `N,"status":S,"headers":{...}` of result and head.
func (p *wireParser) idStatusHeaders() (id uint64, status int, hdr map[string][]string, ok bool) {
	id, ok = p.uint()
	if !ok || !p.lit(`,"status":`) {
		return 0, 0, nil, false
	}
	st, ok := p.uint()
	if !ok || st > 1<<20 || !p.lit(`,"headers":{`) {
		return 0, 0, nil, false
	}
	hdr = make(map[string][]string, 2)
	if p.lit("}") {
		return id, int(st), hdr, true
	}
	for {
		k, ok := p.str()
		if !ok || !p.lit(":[") {
			return 0, 0, nil, false
		}
		vals := []string{}
		if !p.lit("]") {
			for {
				v, ok := p.headerValue()
				if !ok {
					return 0, 0, nil, false
				}
				vals = append(vals, v)
				if p.lit(",") {
					continue
				}
				if !p.lit("]") {
					return 0, 0, nil, false
				}
				break
			}
		}
		hdr[k] = vals
		if p.lit(",") {
			continue
		}
		if !p.lit("}") {
			return 0, 0, nil, false
		}
		return id, int(st), hdr, true
	}
}

// rawString reads a JSON string without escapes (its bytes, unquoted).
func (p *wireParser) rawString() ([]byte, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	end := bytes.IndexByte(p.b[p.i+1:], '"')
	if end < 0 {
		return nil, false
	}
	s := p.b[p.i+1 : p.i+1+end]
	if bytes.IndexByte(s, '\\') >= 0 {
		return nil, false
	}
	p.i += end + 2
	return s, true
}

// base64 reads a JSON string of standard base64 and decodes it.
func (p *wireParser) base64() ([]byte, bool) {
	b64, ok := p.rawString()
	if !ok {
		return nil, false
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, err := base64.StdEncoding.Decode(out, b64)
	if err != nil {
		return nil, false // encoding/json reports it
	}
	return out[:n], true
}

// headerValue reads one base64 header value; common values are interned.
func (p *wireParser) headerValue() (string, bool) {
	b64, ok := p.rawString()
	if !ok {
		return "", false
	}
	if v, ok := internB64[string(b64)]; ok {
		return v, true
	}
	var buf [128]byte
	out := buf[:0]
	if n := base64.StdEncoding.DecodedLen(len(b64)); n > len(buf) {
		out = make([]byte, 0, n)
	}
	out, err := base64.StdEncoding.AppendDecode(out, b64)
	if err != nil {
		return "", false
	}
	return string(out), true
}

type wireParser struct {
	b []byte
	i int
}

func (p *wireParser) lit(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// uint reads a JSON non-negative integer without leading zeros.
func (p *wireParser) uint() (uint64, bool) {
	start := p.i
	var n uint64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		if p.i-start >= 19 {
			return 0, false
		}
		n = n*10 + uint64(p.b[p.i]-'0')
		p.i++
	}
	if p.i == start || (p.b[start] == '0' && p.i-start > 1) {
		return 0, false
	}
	return n, true
}

// str reads a JSON string without escapes or control characters, valid
// UTF-8.
func (p *wireParser) str() (string, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", false
	}
	p.i++
	start := p.i
	ascii := true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !ascii && !utf8.Valid(s) {
				return "", false
			}
			return internHeader(s), true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.i++
	}
	return "", false
}

// internB64 maps the base64 form of common header values to the value.
var internB64 = func() map[string]string {
	m := map[string]string{}
	for _, v := range []string{"application/json", "text/plain", "text/html", "text/plain; charset=utf-8",
		"text/html; charset=utf-8", "application/json; charset=utf-8", "Express", "no-cache", "chunked"} {
		m[base64.StdEncoding.EncodeToString([]byte(v))] = v
	}
	return m
}()

// internHeader returns common header names and values without allocating.
func internHeader(b []byte) string {
	switch string(b) {
	case "content-type":
		return "content-type"
	case "application/json":
		return "application/json"
	case "text/plain":
		return "text/plain"
	case "text/html":
		return "text/html"
	case "text/plain; charset=utf-8":
		return "text/plain; charset=utf-8"
	case "text/html; charset=utf-8":
		return "text/html; charset=utf-8"
	case "application/json; charset=utf-8":
		return "application/json; charset=utf-8"
	case "cache-control":
		return "cache-control"
	case "location":
		return "location"
	case "etag":
		return "etag"
	case "x-powered-by":
		return "x-powered-by"
	case "Express":
		return "Express"
	}
	return string(b)
}
