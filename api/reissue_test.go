package api

import (
	"net/url"
	"testing"

	"github.com/webtaskd/webtaskd/store/token"
)

// pb: an absent claim (plain `wt create`) runs on arity (2); an explicit
// 0 stays 0, in the token, the stored webtask and the run.
func TestIssuePBDefaultAndExplicitZero(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tc := range []struct {
		name, pb string
		want     int
	}{{"absent", ``, token.PbOnArity}, {"zero", `,"pb":0`, token.PbNever}, {"always", `,"pb":1`, token.PbAlways}} {
		raw := e.do("POST", "/api/tokens/issue", e.tenant,
			`{"ten":"test","jtn":"`+tc.name+`","code":"module.exports = (ctx, cb) => cb()","mb":1`+tc.pb+`}`).Body.String()
		c, err := token.Verify(e.ring, raw, e.now)
		if err != nil {
			t.Fatalf("%s: %v (%s)", tc.name, err, raw)
		}
		if (c.Pb == nil) != (tc.pb == "") || token.ParseBody(c.Pb) != tc.want {
			t.Fatalf("%s: token pb %v", tc.name, c.Pb)
		}
		if w := e.do("POST", "/api/run/test/"+tc.name, "", `{"a":1}`); w.Code != 200 {
			t.Fatalf("%s: run %d %s", tc.name, w.Code, w.Body)
		}
		if r := e.runner.last(t); r.PB != tc.want || r.MB != 1 {
			t.Fatalf("%s: run pb %d mb %d", tc.name, r.PB, r.MB)
		}
	}
	// An unnamed code token without pb runs on arity too.
	raw := e.do("POST", "/api/tokens/issue", e.tenant, `{"ten":"test","code":"module.exports = cb => cb()"}`).Body.String()
	if w := e.do("GET", "/api/run/test?key="+url.QueryEscape(raw), "", ""); w.Code != 200 {
		t.Fatalf("unnamed run %d %s", w.Code, w.Body)
	}
	if r := e.runner.last(t); r.PB != token.PbOnArity {
		t.Fatalf("unnamed run pb %d", r.PB)
	}
}

// sandboxjs 5.0.0 webtask.update() with no options re-issues the inspected
// claims without code: the stored code is kept, the rest is what the
// claims say.
func TestReissueNamedWithoutCodeKeepsStoredCode(t *testing.T) {
	e := newEnv(t, Config{})
	if w := e.do("POST", "/api/tokens/issue", e.tenant, wtCreateBody); w.Code != 200 {
		t.Fatalf("create %d %s", w.Code, w.Body)
	}
	w := e.do("POST", "/api/tokens/issue", e.tenant,
		`{"ten":"test","jtn":"hello","dd":0,"dr":1,"ectx":{"SECRET":"s3cr3t"},"pctx":{"P":"p2"},"meta":{"k":"v2"},"mb":1,"pb":1}`)
	if w.Code != 200 {
		t.Fatalf("re-issue %d %s", w.Code, w.Body)
	}
	raw := w.Body.String()
	wt, err := e.store.GetWebtask(t.Context(), "test", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if wt.Code != "module.exports = cb => cb(null, 1)" || wt.CodeURL != "webtask://test/hello" || wt.Token != raw ||
		wt.Secrets["SECRET"] != "s3cr3t" || wt.Params["P"] != "p2" || wt.Meta["k"] != "v2" || wt.PB == nil || *wt.PB != 1 {
		t.Fatalf("stored %+v", wt)
	}
	// Remote code stays remote.
	if w := e.do("POST", "/api/tokens/issue", e.tenant, `{"ten":"test","jtn":"remote","url":"https://example.com/x.js"}`); w.Code != 200 {
		t.Fatalf("remote create %d %s", w.Code, w.Body)
	}
	if w := e.do("POST", "/api/tokens/issue", e.tenant, `{"ten":"test","jtn":"remote"}`); w.Code != 200 {
		t.Fatalf("remote re-issue %d %s", w.Code, w.Body)
	}
	if wt, err := e.store.GetWebtask(t.Context(), "test", "remote"); err != nil || wt.CodeURL != "https://example.com/x.js" || wt.Code != "" {
		t.Fatalf("remote stored %+v, %v", wt, err)
	}
	// Nothing stored under that name: still refused.
	wantError(t, e.do("POST", "/api/tokens/issue", e.tenant, `{"ten":"test","jtn":"nope"}`), 400, "the `jtn` claim requires `code` or `url`")
	// Another tenant's webtask is not reachable this way.
	other := e.sign(&token.Claims{Ten: "other", Dd: intp(1)})
	if w := e.do("POST", "/api/tokens/issue", other, `{"ten":"test","jtn":"hello"}`); w.Code != 403 {
		t.Fatalf("foreign re-issue %d %s", w.Code, w.Body)
	}
}

// sandbox.create("", {name}): empty code is valid code; it runs (and the
// runtime answers its compile error).
func TestEmptyCodeIsCode(t *testing.T) {
	e := newEnv(t, Config{})
	if w := e.do("POST", "/api/tokens/issue", e.tenant, `{"ten":"test","jtn":"empty","code":""}`); w.Code != 200 {
		t.Fatalf("create %d %s", w.Code, w.Body)
	}
	if w := e.do("GET", "/api/run/test/empty", "", ""); w.Code != 200 {
		t.Fatalf("run %d %s", w.Code, w.Body)
	}
	if r := e.runner.last(t); r.Code != "" || r.CodeHash != hashCode(nil) {
		t.Fatalf("code %q hash %q", r.Code, r.CodeHash)
	}
	// v2: PUT with empty code.
	if w := e.do("PUT", "/api/webtask/test/empty2", e.tenant, `{"code":""}`); w.Code != 200 {
		t.Fatalf("put %d %s", w.Code, w.Body)
	}
	// Unnamed: the blob of empty code.
	raw := e.do("POST", "/api/tokens/issue", e.tenant, `{"ten":"test","code":""}`).Body.String()
	if w := e.do("GET", "/api/run/test?key="+url.QueryEscape(raw), "", ""); w.Code != 200 {
		t.Fatalf("unnamed run %d %s", w.Code, w.Body)
	}
	if r := e.runner.last(t); r.Code != "" || r.CodeHash != hashCode(nil) {
		t.Fatalf("unnamed code %q hash %q", r.Code, r.CodeHash)
	}
}
