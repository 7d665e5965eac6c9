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
)

// The hot path of the protocol is encoded and decoded by hand: the invoke
// message's fixed fields are appended directly (encoding/json walks the
// Request by reflection, about a third of the daemon's protocol cost), and
// a "result" line in the exact shape agent.js writes is parsed without
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
		b = append(b, '[')
		for j, s := range v {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		b = append(b, ']')
	}
	return append(b, '}')
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

// resultPrefix starts every result line agent.js writes.
const resultPrefix = `{"op":"result","id":`

var errNotFast = errors.New("not a fast-path result line")

// parseResult parses a "result" line in the exact shape agent.js writes:
//
//	{"op":"result","id":N,"status":S,"headers":{"k":["v",...],...},"body":"<base64>"}\n
//
// with strings free of escapes. Anything else returns errNotFast and is
// left to encoding/json, so the fast path never accepts a line that
// encoding/json would read differently.
func parseResult(line []byte) (id uint64, status int, hdr map[string][]string, body []byte, err error) {
	p := wireParser{b: line}
	if !p.lit(resultPrefix) {
		return 0, 0, nil, nil, errNotFast
	}
	id, ok := p.uint()
	if !ok || !p.lit(`,"status":`) {
		return 0, 0, nil, nil, errNotFast
	}
	st, ok := p.uint()
	if !ok || st > 1<<20 || !p.lit(`,"headers":{`) {
		return 0, 0, nil, nil, errNotFast
	}
	hdr = make(map[string][]string, 2)
	if !p.lit("}") {
		for {
			k, ok := p.str()
			if !ok || !p.lit(":[") {
				return 0, 0, nil, nil, errNotFast
			}
			var vals []string
			if !p.lit("]") {
				for {
					v, ok := p.str()
					if !ok {
						return 0, 0, nil, nil, errNotFast
					}
					vals = append(vals, v)
					if p.lit(",") {
						continue
					}
					if !p.lit("]") {
						return 0, 0, nil, nil, errNotFast
					}
					break
				}
			} else {
				vals = []string{}
			}
			hdr[k] = vals
			if p.lit(",") {
				continue
			}
			if !p.lit("}") {
				return 0, 0, nil, nil, errNotFast
			}
			break
		}
	}
	if !p.lit(`,"body":"`) {
		return 0, 0, nil, nil, errNotFast
	}
	end := bytes.IndexByte(p.b[p.i:], '"')
	if end < 0 {
		return 0, 0, nil, nil, errNotFast
	}
	b64 := p.b[p.i : p.i+end]
	p.i += end + 1
	if !p.lit("}\n") || p.i != len(p.b) {
		return 0, 0, nil, nil, errNotFast
	}
	body = make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, derr := base64.StdEncoding.Decode(body, b64)
	if derr != nil {
		return 0, 0, nil, nil, errNotFast // encoding/json reports it
	}
	return id, int(st), hdr, body[:n], nil
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
