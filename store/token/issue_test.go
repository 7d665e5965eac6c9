package token

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseIssueRequestWtCreateBody(t *testing.T) {
	body := `{"ten":"test","dd":0,"code":"module.exports = cb => cb(null, 1)","ectx":{"S":"v"},"pctx":{"P":1},"meta":{"k":"v"},"mb":1,"pb":1,"dr":1,"jtn":"hello","host":"h.example"}`
	r, err := ParseIssueRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if r.Ten != "test" || r.Jtn != "hello" || r.Dd != 0 || !r.Has("dd") || r.Mb != 1 || r.Pb != 1 || r.Dr != 1 ||
		r.Ectx["S"] != "v" || r.Meta["k"] != "v" || r.Host != "h.example" || !strings.HasPrefix(r.Code, "module") {
		t.Fatalf("parsed = %+v", r)
	}
	if r.Has("url") || r.Has("exp") {
		t.Fatal("absent claims marked present")
	}
}

func TestParseIssueRequestLenientNumbers(t *testing.T) {
	r, err := ParseIssueRequest([]byte(`{"lm":"10","ls":1.0,"dd":"2","pb":2.0,"exp":"1900000000","lts":" 5 ","nbf":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Limits["lm"] != 10 || r.Limits["ls"] != 1 || r.Dd != 2 || r.Pb != 2 || r.Exp != 1900000000 || r.Limits["lts"] != 5 {
		t.Fatalf("parsed = %+v", r)
	}
	if r.Has("nbf") {
		t.Fatal("null claim counted as present")
	}
}

func TestParseIssueRequestRejects(t *testing.T) {
	for _, tc := range []struct{ body, claim, msg string }{
		{``, "", "the request body must be a JSON object of token claims"},
		{`{`, "", "the request body must be a JSON object of token claims"},
		{`[]`, "", "the request body must be a JSON object of token claims"},
		{`null`, "", "the request body must be a JSON object of token claims"},
		{`{} {}`, "", "the request body must be a single JSON object"},
		{`{"foo":1}`, "foo", "unsupported claim `foo`"},
		{`{"ten":1}`, "ten", "the `ten` claim must be a string"},
		{`{"ten":""}`, "ten", "the `ten` claim must not be empty"},
		{`{"ten":"a,../b"}`, "ten", "the `ten` claim must be a comma-separated list of valid container names or a /regex/"},
		{`{"ten":"/[/"}`, "ten", "the `ten` claim is not a valid regular expression"},
		{`{"jtn":"../x"}`, "jtn", "the `jtn` claim must be a valid webtask name"},
		{`{"jti":"abc"}`, "jti", "the `jti` claim must be 32 lower-case hex characters"},
		{`{"pctx":"x"}`, "pctx", "the `pctx` claim must be a JSON object"},
		{`{"ectx":[1]}`, "ectx", "the `ectx` claim must be a JSON object"},
		{`{"meta":{"a":1}}`, "meta", "the `meta` claim must be a JSON object of string values"},
		{`{"dd":-1}`, "dd", "the `dd` claim must be a non-negative integer"},
		{`{"dd":1.5}`, "dd", "the `dd` claim must be an integer"},
		{`{"dd":"x"}`, "dd", "the `dd` claim must be an integer"},
		{`{"dd":true}`, "dd", "the `dd` claim must be an integer"},
		{`{"mb":2}`, "mb", "the `mb` claim must be 0 or 1"},
		{`{"pb":3}`, "pb", "the `pb` claim must be 0, 1 or 2"},
		{`{"lm":0}`, "lm", "the `lm` claim must be an integer between 1 and 2147483647"},
		{`{"lto":2147483648}`, "lto", "the `lto` claim must be an integer between 1 and 2147483647"},
		{`{"exp":-5}`, "exp", "the `exp` claim must be a positive Unix time in seconds"},
		{`{"url":"ftp://x"}`, "url", "the `url` claim must be an http or https URL"},
		{`{"url":"webtask://victim/code"}`, "url", "the `url` claim must be an http or https URL"},
		{`{"code":"x","url":"https://x"}`, "code", "the `code` and `url` claims cannot both be specified"},
		{`{"exp":100,"nbf":100}`, "exp", "the `exp` claim must be later than the `nbf` claim"},
	} {
		_, err := ParseIssueRequest([]byte(tc.body))
		var ce *ClaimError
		if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidRequest) || ce.Claim != tc.claim || ce.Error() != tc.msg {
			t.Errorf("%s: err = %v (%#v), want claim %q msg %q", tc.body, err, ce, tc.claim, tc.msg)
		}
	}
}

func TestNarrow(t *testing.T) {
	n := now.Unix()
	tenant := &Claims{Ten: "test", Jti: "p1", Ca: []string{"root"}}
	tenantDD := func(dd int) *Claims { return &Claims{Ten: "test", Jti: "p1", Dd: ptr(dd)} }
	list := &Claims{Ten: "a,b,c", Jti: "p1"}
	re := &Claims{Ten: "/^team-.*$/", Jti: "p1"}
	master := &Claims{Jti: "m"}
	withURL := &Claims{Ten: "test", Jti: "p1", URL: "webtask://test/x", Pb: ptr(1), Mb: 1}
	withLimits := &Claims{Ten: "test", Jti: "p1", Lm: 10}
	windowed := &Claims{Ten: "test", Jti: "p1", Exp: n + 100, Nbf: n - 100}
	withEctx := &Claims{Ten: "test", Jti: "p1", Ectx: "c2VhbGVk.aXY="}
	withPctx := &Claims{Ten: "test", Jti: "p1", Pctx: map[string]any{"a": 1}}
	withJtn := &Claims{Ten: "test", Jti: "p1", Jtn: "w", URL: "webtask://test/w"}

	type check func(t *testing.T, c *Claims)
	for _, tc := range []struct {
		name   string
		parent *Claims
		body   string
		kind   error // nil = allowed
		msg    string
		check  check
	}{
		// Allowed.
		{"wt create", tenant, `{"ten":"test","dd":0,"code":"x","jtn":"hello","mb":1,"dr":1}`, nil, "", func(t *testing.T, c *Claims) {
			if c.Ten != "test" || c.Jtn != "hello" || *c.Dd != 0 || c.Mb != 1 || c.Dr != 1 || c.Iat != n {
				t.Fatalf("%+v", c)
			}
			if len(c.Ca) != 2 || c.Ca[0] != "root" || c.Ca[1] != "p1" {
				t.Fatalf("ca = %v", c.Ca)
			}
		}},
		{"inherits ten", tenant, `{"code":"x","jtn":"n"}`, nil, "", func(t *testing.T, c *Claims) {
			if c.Ten != "test" {
				t.Fatal(c.Ten)
			}
		}},
		{"list subset", list, `{"ten":"a,c"}`, nil, "", func(t *testing.T, c *Claims) {
			if c.Ten != "a,c" {
				t.Fatal(c.Ten)
			}
		}},
		{"regex member", re, `{"ten":"team-x"}`, nil, "", nil},
		{"master any ten", master, `{"ten":"/.*/"}`, nil, "", func(t *testing.T, c *Claims) {
			if len(c.Ca) != 1 || c.Ca[0] != "m" {
				t.Fatalf("ca = %v", c.Ca)
			}
		}},
		{"master child of master", master, `{}`, nil, "", func(t *testing.T, c *Claims) {
			if !c.IsMaster() || *c.Dd != 1 {
				t.Fatalf("%+v", c)
			}
		}},
		{"dd default 1", tenant, `{}`, nil, "", func(t *testing.T, c *Claims) {
			if *c.Dd != 1 {
				t.Fatal(*c.Dd)
			}
		}},
		{"dd min(parent-1, req)", tenantDD(3), `{"dd":5}`, nil, "", func(t *testing.T, c *Claims) {
			if *c.Dd != 2 {
				t.Fatal(*c.Dd)
			}
		}},
		{"dd parent-1", tenantDD(3), `{}`, nil, "", func(t *testing.T, c *Claims) {
			if *c.Dd != 2 {
				t.Fatal(*c.Dd)
			}
		}},
		{"dd from request", tenant, `{"dd":7}`, nil, "", func(t *testing.T, c *Claims) {
			if *c.Dd != 7 {
				t.Fatal(*c.Dd)
			}
		}},
		{"url parent fixes mb pb", withURL, `{"ten":"test"}`, nil, "", func(t *testing.T, c *Claims) {
			if c.URL != "webtask://test/x" || ParseBody(c.Pb) != 1 || c.Mb != 1 {
				t.Fatalf("%+v", c)
			}
		}},
		{"mb pb dropped without code", tenant, `{"mb":1,"pb":1}`, nil, "", func(t *testing.T, c *Claims) {
			if c.Mb != 0 || c.Pb != nil {
				t.Fatalf("%+v", c)
			}
		}},
		{"container limits inherited, token limits not", &Claims{Ten: "test", Jti: "p", Lm: 10, TokenLimits: TokenLimits{Lts: 3}}, `{"ltm":4}`, nil, "", func(t *testing.T, c *Claims) {
			if c.Lm != 10 || c.Lts != 0 || c.Ltm != 4 {
				t.Fatalf("%+v", c)
			}
		}},
		{"window inherited", windowed, `{}`, nil, "", func(t *testing.T, c *Claims) {
			if c.Exp != n+100 || c.Nbf != n-100 {
				t.Fatalf("%+v", c)
			}
		}},
		{"window narrowed", windowed, `{"exp":` + itoa(n+50) + `,"nbf":` + itoa(n-50) + `}`, nil, "", nil},
		{"ectx from request stays plain", tenant, `{"ectx":{"S":"v"}}`, nil, "", func(t *testing.T, c *Claims) {
			if c.Secrets["S"] != "v" || c.Ectx != "" {
				t.Fatalf("%+v", c)
			}
		}},
		{"ectx inherited sealed", withEctx, `{}`, nil, "", func(t *testing.T, c *Claims) {
			if c.Ectx != "c2VhbGVk.aXY=" || c.Secrets != nil {
				t.Fatalf("%+v", c)
			}
		}},
		{"jti with master key", nil, `{"jti":"0123456789abcdef0123456789abcdef"}`, nil, "", func(t *testing.T, c *Claims) {
			if c.Jti != "0123456789abcdef0123456789abcdef" || len(c.Ca) != 0 {
				t.Fatalf("%+v", c)
			}
		}},
		{"remote url named", tenant, `{"url":"https://example.com/x.js","jtn":"r"}`, nil, "", nil},
		{"child of tenant never master", tenant, `{"dd":0}`, nil, "", func(t *testing.T, c *Claims) {
			if c.IsMaster() || c.Ten != "test" || *c.Dd != 0 {
				t.Fatalf("%+v", c)
			}
		}},
		{"exp equal to parent", windowed, `{"exp":` + itoa(n+100) + `}`, nil, "", nil},
		{"lenient string limits (wt token create)", tenant, `{"lts":"5","ltm":"60","ls":"2"}`, nil, "", func(t *testing.T, c *Claims) {
			if c.Lts != 5 || c.Ltm != 60 || c.Ls != 2 {
				t.Fatalf("%+v", c)
			}
		}},
		{"mb pb from request with code", tenant, `{"code":"x","jtn":"n","pb":2,"mb":1}`, nil, "", func(t *testing.T, c *Claims) {
			if c.Pb == nil || *c.Pb != 2 || c.Mb != 1 {
				t.Fatalf("%+v", c)
			}
		}},
		{"absent pb stays absent (on arity)", tenant, `{"code":"x","jtn":"n"}`, nil, "", func(t *testing.T, c *Claims) {
			if c.Pb != nil || ParseBody(c.Pb) != PbOnArity {
				t.Fatalf("pb = %v", c.Pb)
			}
		}},
		{"explicit pb 0 kept", tenant, `{"code":"x","jtn":"n","pb":0}`, nil, "", func(t *testing.T, c *Claims) {
			if c.Pb == nil || *c.Pb != PbNever {
				t.Fatalf("pb = %v", c.Pb)
			}
		}},
		{"empty code is code", tenant, `{"code":"","jtn":"n"}`, nil, "", nil},
		{"url parent without pb: on arity restated", &Claims{Ten: "test", Jti: "p1", URL: "webtask://test/x"}, `{"pb":2}`, nil, "", func(t *testing.T, c *Claims) {
			if c.Pb != nil {
				t.Fatalf("pb = %v", *c.Pb)
			}
		}},
		{"regex parent list child", re, `{"ten":"team-a,team-b"}`, nil, "", nil},
		{"same mb pb as url parent", withURL, `{"mb":1,"pb":1}`, nil, "", nil},
		{"ca chain grows", &Claims{Ten: "test", Jti: "p2", Ca: []string{"root", "p1"}}, `{}`, nil, "", func(t *testing.T, c *Claims) {
			if len(c.Ca) != 3 || c.Ca[2] != "p2" {
				t.Fatalf("ca = %v", c.Ca)
			}
		}},

		// Refused.
		{"dd 0 cannot issue", tenantDD(0), `{}`, ErrInvalidRequest, "The authentication webtask token cannot be used to issue new webtask tokens.", nil},
		{"foreign ten", tenant, `{"ten":"other"}`, ErrNotAllowed, "the `ten` claim must be within the authentication token's `ten`: container `other` is not allowed", nil},
		{"list superset", list, `{"ten":"a,d"}`, ErrNotAllowed, "the `ten` claim must be within the authentication token's `ten`: container `d` is not allowed", nil},
		{"regex from list", list, `{"ten":"/a/"}`, ErrNotAllowed, "the `ten` claim cannot be a regular expression unless issued by a master token", nil},
		{"regex from regex", re, `{"ten":"/team-a.*/"}`, ErrNotAllowed, "the `ten` claim cannot be a regular expression unless issued by a master token", nil},
		{"regex non-member", re, `{"ten":"teamx"}`, ErrNotAllowed, "the `ten` claim must be within the authentication token's `ten`: container `teamx` is not allowed", nil},
		{"url fixed", withURL, `{"url":"https://x"}`, ErrInvalidRequest, "the `url` claim cannot be specified if the authentication token already specifies it", nil},
		{"code under url", withURL, `{"code":"x"}`, ErrInvalidRequest, "the `code` claim cannot be specified if the authentication token already specifies `url`", nil},
		{"pb fixed by url", withURL, `{"pb":0}`, ErrInvalidRequest, "the `pb` claim is fixed by the authentication token's `url`", nil},
		{"ectx fixed", withEctx, `{"ectx":{"a":"b"}}`, ErrInvalidRequest, "the `ectx` claim cannot be specified if the authentication token already specifies it", nil},
		{"pctx fixed", withPctx, `{"pctx":{}}`, ErrInvalidRequest, "the `pctx` claim cannot be specified if the authentication token already specifies it", nil},
		{"jtn fixed", withJtn, `{"jtn":"other"}`, ErrInvalidRequest, "the `jtn` claim cannot be specified if the authentication token already specifies it", nil},
		{"container limit fixed", withLimits, `{"lm":100}`, ErrInvalidRequest, "the `lm` claim cannot be specified if the authentication token already specifies it", nil},
		{"exp beyond parent", windowed, `{"exp":` + itoa(n+101) + `}`, ErrNotAllowed, "the `exp` claim cannot be later than the authentication token's `exp`", nil},
		{"nbf before parent", windowed, `{"nbf":` + itoa(n-101) + `}`, ErrNotAllowed, "the `nbf` claim cannot be earlier than the authentication token's `nbf`", nil},
		{"exp in past", tenant, `{"exp":` + itoa(n-1) + `}`, ErrInvalidRequest, "the `exp` claim is in the past", nil},
		{"inherited nbf after exp", windowed, `{"nbf":` + itoa(n+100) + `}`, ErrInvalidRequest, "the `exp` claim must be later than the `nbf` claim", nil},
		{"jtn needs single ten", list, `{"jtn":"x","code":"c"}`, ErrInvalidRequest, "the `jtn` claim requires the `ten` claim to name a single container", nil},
		{"jtn with master ten", master, `{"jtn":"x","code":"c"}`, ErrInvalidRequest, "the `jtn` claim requires the `ten` claim to name a single container", nil},
		{"jtn needs code", tenant, `{"jtn":"x"}`, ErrInvalidRequest, "the `jtn` claim requires `code` or `url`", nil},
		{"mb fixed by url", withURL, `{"mb":0}`, ErrInvalidRequest, "the `mb` claim is fixed by the authentication token's `url`", nil},
		{"month limit fixed", &Claims{Ten: "test", Jti: "p1", Lo: 9}, `{"lo":"10"}`, ErrInvalidRequest, "the `lo` claim cannot be specified if the authentication token already specifies it", nil},
		{"dd 0 master child cannot issue", &Claims{Jti: "m", Dd: ptr(0)}, `{"ten":"x"}`, ErrInvalidRequest, "The authentication webtask token cannot be used to issue new webtask tokens.", nil},
		{"wider list from single", tenant, `{"ten":"test,other"}`, ErrNotAllowed, "the `ten` claim must be within the authentication token's `ten`: container `other` is not allowed", nil},
		{"jti needs master key", master, `{"jti":"0123456789abcdef0123456789abcdef"}`, ErrNotAllowed, "the `jti` claim can only be specified when issuing with the master key", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := ParseIssueRequest([]byte(tc.body))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			c, err := Narrow(tc.parent, req, now)
			if tc.kind == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tc.check != nil {
					tc.check(t, c)
				}
				return
			}
			var ce *ClaimError
			if !errors.Is(err, tc.kind) || !errors.As(err, &ce) || ce.Error() != tc.msg {
				t.Fatalf("err = %v, want %v %q", err, tc.kind, tc.msg)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestNarrowRecordsAncestorLimits: token limits are not inherited, but the
// child records every limited ancestor's in alim.
func TestNarrowRecordsAncestorLimits(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	grand := &Claims{Ten: "t", Jti: "g", TokenLimits: TokenLimits{Lts: 5}}
	req, err := ParseIssueRequest([]byte(`{"ltm":7}`))
	if err != nil {
		t.Fatal(err)
	}
	parent, err := Narrow(grand, req, now)
	if err != nil {
		t.Fatal(err)
	}
	parent.Jti = "p"
	if parent.Lts != 0 || parent.Ltm != 7 || parent.Alim["g"] != (TokenLimits{Lts: 5}) || len(parent.Alim) != 1 {
		t.Fatalf("parent %+v", parent)
	}
	empty, _ := ParseIssueRequest([]byte(`{}`))
	child, err := Narrow(parent, empty, now)
	if err != nil {
		t.Fatal(err)
	}
	if child.Ltm != 0 || child.Alim["g"] != (TokenLimits{Lts: 5}) || child.Alim["p"] != (TokenLimits{Ltm: 7}) || len(child.Alim) != 2 {
		t.Fatalf("child %+v", child)
	}
	unlimited, err := Narrow(&Claims{Ten: "t", Jti: "u"}, empty, now)
	if err != nil || unlimited.Alim != nil {
		t.Fatalf("child of an unlimited token: %+v %v", unlimited, err)
	}
}
