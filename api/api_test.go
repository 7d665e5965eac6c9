package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox"
	"github.com/webtaskd/webtaskd/sandbox/agent"
	"github.com/webtaskd/webtaskd/store/token"
)

const wtCreateBody = `{"ten":"test","dd":0,"code":"module.exports = cb => cb(null, 1)","ectx":{"SECRET":"s3cr3t"},"pctx":{"P":"p"},"meta":{"k":"v"},"mb":1,"pb":1,"dr":1,"jtn":"hello"}`

func TestHealthz(t *testing.T) {
	e := newEnv(t, Config{})
	w := e.do("GET", "/healthz", "", "")
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"status":"ok"}` || w.Header().Get(HeaderRequestID) == "" {
		t.Fatalf("%d %s %v", w.Code, w.Body, w.Header())
	}
	w2 := e.do("GET", "/healthz", "", "")
	if w2.Header().Get(HeaderRequestID) == w.Header().Get(HeaderRequestID) {
		t.Fatal("request ids repeat")
	}
}

func TestIssueNamedWebtask(t *testing.T) {
	e := newEnv(t, Config{})
	w := e.do("POST", "/api/tokens/issue", e.tenant, wtCreateBody)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content-type %q", ct)
	}
	if loc := w.Header().Get("Location"); loc != "http://example.com/api/run/test/hello" {
		t.Fatalf("Location = %q", loc)
	}
	raw := w.Body.String()
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if string(hdr) != `{"alg":"HS256","kid":"`+e.ring.Current().ID+`"}` {
		t.Fatalf("header %s", hdr)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])
	if strings.Contains(string(payload), "s3cr3t") || strings.Contains(string(payload), "module.exports") {
		t.Fatalf("payload leaks secrets or code: %s", payload)
	}
	c, err := token.Verify(e.ring, raw, e.now)
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "webtask://test/hello" || c.Jtn != "hello" || c.Ten != "test" || *c.Dd != 0 || token.ParseBody(c.Pb) != 1 || c.Mb != 1 ||
		!strings.Contains(c.Ectx, ".") || c.Meta["k"] != "v" || len(c.Ca) != 1 {
		t.Fatalf("claims %+v", c)
	}
	wt, err := e.store.GetWebtask(t.Context(), "test", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if wt.Code != "module.exports = cb => cb(null, 1)" || wt.CodeURL != "webtask://test/hello" || wt.Secrets["SECRET"] != "s3cr3t" ||
		wt.Params["P"] != "p" || wt.Meta["k"] != "v" || wt.PB == nil || *wt.PB != 1 || wt.MB != 1 || wt.Token != raw {
		t.Fatalf("stored %+v", wt)
	}
	// The sealed ectx opens with the token's kid and the {c}/{n} binding only.
	if _, err := e.ring.Unseal(c.Ectx, c.Kid, []byte("test/hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ring.Unseal(c.Ectx, c.Kid, []byte("test")); err == nil {
		t.Fatal("ectx opened with a foreign binding")
	}
}

func TestIssuePublicURL(t *testing.T) {
	e := newEnv(t, Config{PublicURL: "https://wt.example.org/"})
	w := e.do("POST", "/api/tokens/issue", e.tenant, wtCreateBody)
	if loc := w.Header().Get("Location"); loc != "https://wt.example.org/api/run/test/hello" {
		t.Fatalf("Location = %q", loc)
	}
}

func TestIssueUnnamed(t *testing.T) {
	e := newEnv(t, Config{})
	_, c := e.issueUnnamed(`{"ten":"test","url":"https://example.com/x.js","ectx":{"A":"b"}}`)
	if plain, err := e.ring.Unseal(c.Ectx, c.Kid, []byte("test")); err != nil || string(plain) != `{"A":"b"}` {
		t.Fatalf("unseal %q %v", plain, err)
	}
	if e.fstore.writeCount() != 0 {
		t.Fatal("unnamed token stored something")
	}
	// Inline code without jtn: TestIssueUnnamedCode (code_test.go).
}

func TestIssueChildInheritsSealedSecrets(t *testing.T) {
	e := newEnv(t, Config{})
	// A tenant token with secrets bound to ten "a,b" issues a child for "a".
	parentRaw := e.do("POST", "/api/tokens/issue", e.master, `{"ten":"a,b","dd":2,"ectx":{"K":"v"}}`).Body.String()
	w := e.do("POST", "/api/tokens/issue", parentRaw, `{"ten":"a"}`)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	c, err := token.Verify(e.ring, w.Body.String(), e.now)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := e.ring.Unseal(c.Ectx, c.Kid, []byte("a")); err != nil || string(plain) != `{"K":"v"}` {
		t.Fatalf("child secrets %q %v", plain, err)
	}
}

func TestIssueToRunFlow(t *testing.T) {
	e := newEnv(t, Config{})
	e.runner.resp = &agent.Response{Status: 201, Headers: map[string][]string{
		"content-type": {"text/html"}, "x-custom": {"a", "b"}, "content-length": {"999"}, "x-wt-request-id": {"spoofed"},
	}, Body: []byte("<p>hi</p>")}
	raw := e.do("POST", "/api/tokens/issue", e.tenant, wtCreateBody).Body.String()

	w := e.do("POST", "/api/run/test/hello/sub/path?x=1&y=%20z", "", `{"in":1}`, "X-Thing", "t", "Content-Type", "application/json")
	if w.Code != 201 || w.Body.String() != "<p>hi</p>" || w.Header().Get("Content-Type") != "text/html" ||
		strings.Join(w.Header().Values("X-Custom"), ",") != "a,b" {
		t.Fatalf("%d %q %v", w.Code, w.Body, w.Header())
	}
	if id := w.Header().Get(HeaderRequestID); id == "spoofed" || id == "" {
		t.Fatalf("request id header %q", id)
	}
	req := e.runner.last(t)
	if req.ReqID != w.Header().Get(HeaderRequestID) || req.Container != "test" || req.Name != "hello" || req.URLFormat != 1 {
		t.Fatalf("ids %+v", req)
	}
	if req.Code != "module.exports = cb => cb(null, 1)" || req.CodeHash != hashCode([]byte(req.Code)) {
		t.Fatalf("code %q hash %q", req.Code, req.CodeHash)
	}
	if req.Method != "POST" || req.URL != "/api/run/test/hello/sub/path?x=1&y=%20z" || string(req.Body) != `{"in":1}` {
		t.Fatalf("http %s %s %q", req.Method, req.URL, req.Body)
	}
	if req.Headers["x-thing"][0] != "t" || req.Headers["content-type"][0] != "application/json" || req.Headers["host"][0] != "example.com" {
		t.Fatalf("headers %v", req.Headers)
	}
	for k := range req.Headers {
		if k != strings.ToLower(k) {
			t.Fatalf("header %q not lower-case", k)
		}
	}
	if req.Secrets["SECRET"] != "s3cr3t" || req.Params["P"] != "p" || req.Meta["k"] != "v" || req.PB != 1 || req.MB != 1 || req.Token != raw {
		t.Fatalf("context %+v", req)
	}

	// No sub-path, and a trailing slash (wt browse) both reach the webtask.
	for _, p := range []string{"/api/run/test/hello", "/api/run/test/hello/"} {
		if w := e.do("GET", p, "", ""); w.Code != 201 || e.runner.last(t).URL != p {
			t.Fatalf("%s: %d", p, w.Code)
		}
	}
	// Unknown webtask.
	wantError(t, e.do("GET", "/api/run/test/nope", "", ""), 404, "unable to resolve jtn to webtask token")
}

func TestRunUnnamedBundleProbe(t *testing.T) {
	e := newEnv(t, Config{})
	probe := `module.exports = cb => cb(null, { version: process.version.replace(/^v/,'') });`
	w := e.do("POST", "/api/run/test", e.tenant, probe, "Content-Type", "application/x-www-form-urlencoded")
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	req := e.runner.last(t)
	if req.Code != probe || req.CodeHash != hashCode([]byte(probe)) || req.Body != nil || req.Name != "" || req.Token != "" {
		t.Fatalf("request %+v", req)
	}
	// key= works too; GET without url claim has no code.
	wantError(t, e.do("GET", "/api/run/test?key="+e.tenant, "", ""), 400, "no code to run: the token has no url and the request body holds no code")
	wantError(t, e.do("POST", "/api/run/other", e.tenant, probe), 403, "not authorized to perform operation on tenant `other`")
	wantError(t, e.do("POST", "/api/run/test", "", probe), 403, msgNoAuth)
}

func TestRunUnnamedWithWebtaskToken(t *testing.T) {
	e := newEnv(t, Config{})
	raw := e.do("POST", "/api/tokens/issue", e.tenant, wtCreateBody).Body.String()
	w := e.do("GET", "/api/run/test?key="+raw, "", "")
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	req := e.runner.last(t)
	if req.Code != "module.exports = cb => cb(null, 1)" || req.Secrets["SECRET"] != "s3cr3t" || req.Token != raw || req.Name != "hello" {
		t.Fatalf("request %+v", req)
	}
}

func TestRemoteCodeFromPrivateAddressRefused(t *testing.T) {
	var hits atomic.Int32
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, "module.exports = cb => cb(null, 'internal')")
	}))
	defer remote.Close()
	_, port, _ := net.SplitHostPort(remote.Listener.Addr().String())
	e := newEnv(t, Config{}) // default: private addresses refused
	for _, u := range []string{remote.URL + "/x.js", "http://localhost:" + port + "/x.js", "http://[::1]:" + port + "/x.js"} {
		body := fmt.Sprintf(`{"ten":"test","url":%q,"jtn":"r"}`, u)
		if w := e.do("POST", "/api/tokens/issue", e.tenant, body); w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		w := e.do("GET", "/api/run/test/r", "", "")
		if w.Code != 400 || !strings.Contains(w.Body.String(), "private") {
			t.Fatalf("%s: %d %s, want 400 naming private addresses", u, w.Code, w.Body)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the loopback server was reached %d times", hits.Load())
	}
}

func TestRunRemoteCodeCached(t *testing.T) {
	var hits atomic.Int32
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/missing.js" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "module.exports = cb => cb(null, 'remote')")
	}))
	defer remote.Close()
	e := newEnv(t, Config{AllowPrivateCodeURLs: true}) // the test server is on loopback
	body := fmt.Sprintf(`{"ten":"test","url":%q,"jtn":"r"}`, remote.URL+"/x.js")
	if w := e.do("POST", "/api/tokens/issue", e.tenant, body); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	for i := 0; i < 3; i++ {
		if w := e.do("GET", "/api/run/test/r", "", ""); w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	req := e.runner.last(t)
	if req.Code != "module.exports = cb => cb(null, 'remote')" || req.CodeHash != hashCode([]byte(req.Code)) {
		t.Fatalf("request %+v", req)
	}
	if hits.Load() != 1 {
		t.Fatalf("remote fetched %d times, want 1 (cached)", hits.Load())
	}
	e.now = e.now.Add(remoteCodeTTL + time.Second)
	e.do("GET", "/api/run/test/r", "", "")
	if hits.Load() != 2 {
		t.Fatalf("remote fetched %d times after TTL, want 2", hits.Load())
	}
	body = fmt.Sprintf(`{"ten":"test","url":%q,"jtn":"gone"}`, remote.URL+"/missing.js")
	e.do("POST", "/api/tokens/issue", e.tenant, body)
	wantError(t, e.do("GET", "/api/run/test/gone", "", ""), 502, "unable to fetch the webtask code from its url")
}

func TestRunSandboxErrors(t *testing.T) {
	e := newEnv(t, Config{})
	e.do("POST", "/api/tokens/issue", e.tenant, wtCreateBody)
	for _, tc := range []struct {
		err    error
		status int
		msg    string
	}{
		{fmt.Errorf("%w (30s)", sandbox.ErrTimeout), 504, "webtask exceeded the execution time limit"},
		{sandbox.ErrOOM, 500, "webtask exceeded the memory limit"},
		{fmt.Errorf("exit status 1: %w", sandbox.ErrCrashed), 500, "webtask runtime exited unexpectedly"},
		{fmt.Errorf("libcontainer: secret detail: %w", sandbox.ErrStart), 503, "sandbox could not be started"},
		{sandbox.ErrDestroyed, 503, "sandbox destroyed"},
		{errors.New("disk on fire"), 500, "internal server error"},
	} {
		e.runner.err = tc.err
		wantError(t, e.do("GET", "/api/run/test/hello", "", ""), tc.status, tc.msg)
	}
	e.runner.err = nil
	e.runner.resp = &agent.Response{Status: 0}
	wantError(t, e.do("GET", "/api/run/test/hello", "", ""), 500, "internal server error")
}

func TestInspect(t *testing.T) {
	e := newEnv(t, Config{})
	raw := e.do("POST", "/api/tokens/issue", e.tenant, wtCreateBody).Body.String()
	q := "/api/tokens/inspect?token=" + raw

	basic := decode[map[string]any](t, e.do("GET", q, e.tenant, ""))
	if basic["url"] != "webtask://test/hello" || basic["jtn"] != "hello" || basic["meta"] != nil || basic["code"] != nil ||
		basic["secrets"] != nil || basic["webtask_url"] != "http://example.com/api/run/test/hello" {
		t.Fatalf("basic %v", basic)
	}
	if s, _ := basic["ectx"].(string); !strings.Contains(s, ".") {
		t.Fatalf("ectx %v", basic["ectx"])
	}
	for _, flag := range []string{"1", "true"} {
		full := decode[map[string]any](t, e.do("GET", q+"&decrypt="+flag+"&fetch_code="+flag+"&meta="+flag, e.tenant, ""))
		ectx, _ := full["ectx"].(map[string]any)
		secrets, _ := full["secrets"].(map[string]any)
		meta, _ := full["meta"].(map[string]any)
		if ectx["SECRET"] != "s3cr3t" || secrets["SECRET"] != "s3cr3t" || full["code"] != "module.exports = cb => cb(null, 1)" ||
			full["url"] != "webtask://test/hello" || meta["k"] != "v" {
			t.Fatalf("flag %s: %v", flag, full)
		}
	}
	// The master may decrypt anything.
	if w := e.do("GET", q+"&decrypt=true", e.master, ""); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	// Another token of the same tenant may inspect but not decrypt.
	other := e.sign(&token.Claims{Ten: "test"})
	if w := e.do("GET", q, other, ""); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	wantError(t, e.do("GET", q+"&decrypt=true", other, ""), 403, "not authorized to decrypt the secrets of this token")
	// A foreign tenant may not inspect; the webtask token itself may not decrypt.
	wantError(t, e.do("GET", q, e.sign(&token.Claims{Ten: "other"}), ""), 403, "not authorized to inspect this token")
	wantError(t, e.do("GET", q+"&decrypt=1", raw, ""), 403, "not authorized to decrypt the secrets of this token")
	wantError(t, e.do("GET", "/api/tokens/inspect", e.tenant, ""), 400, "the token query parameter is required")
	wantError(t, e.do("GET", "/api/tokens/inspect?token=garbage", e.tenant, ""), 403, "malformed JWT token")
}

func TestWebtaskCRUD(t *testing.T) {
	e := newEnv(t, Config{})
	w := e.do("PUT", "/api/webtask/test/w1", e.tenant, `{"code":"module.exports = cb => cb()","secrets":{"S":"1"},"meta":{"team":"a","env":"prod"}}`)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	got := decode[types.Webtask](t, w)
	if got.Container != "test" || got.Name != "w1" || got.Meta["team"] != "a" || got.WebtaskURL != "http://example.com/api/run/test/w1" || got.Secrets != nil {
		t.Fatalf("put %+v", got)
	}
	c, err := token.Verify(e.ring, got.Token, e.now)
	if err != nil || c.Jtn != "w1" || c.URL != "webtask://test/w1" {
		t.Fatalf("token %+v %v", c, err)
	}
	e.do("PUT", "/api/webtask/test/w2", e.tenant, `{"url":"https://example.com/x.js","meta":{"team":"b","env":"prod"}}`)
	e.do("PUT", "/api/webtask/test/w3", e.tenant, `{"code":"x","meta":{"team":"a","env":"dev"}}`)

	g := decode[types.Webtask](t, e.do("GET", "/api/webtask/test/w1", e.tenant, ""))
	if g.Token != got.Token || g.Secrets != nil || g.Code != nil {
		t.Fatalf("get %+v", g)
	}
	g = decode[types.Webtask](t, e.do("GET", "/api/webtask/test/w1?decrypt=true&fetch_code=true", e.tenant, ""))
	if g.Secrets["S"] != "1" || g.Code == nil || *g.Code != "module.exports = cb => cb()" {
		t.Fatalf("get decrypted %+v", g)
	}
	wantError(t, e.do("GET", "/api/webtask/test/w1?decrypt=true", e.sign(&token.Claims{Ten: "test"}), ""), 403, "")

	names := func(w *httptest.ResponseRecorder) string {
		t.Helper()
		if w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		var out []string
		for _, it := range decode[[]types.Webtask](t, w) {
			if it.Token == "" || it.WebtaskURL == "" || it.Container != "test" {
				t.Fatalf("item %+v", it)
			}
			out = append(out, it.Name)
		}
		return strings.Join(out, ",")
	}
	for q, want := range map[string]string{
		"":                             "w1,w2,w3",
		"?limit=100":                   "w1,w2,w3",
		"?limit=1000":                  "w1,w2,w3",
		"?offset=1&limit=1":            "w2",
		"?meta=team%3Aa":               "w1,w3",
		"?meta=team:a&meta=env:prod":   "w1",
		"?meta=team:a&meta=team:b":     "",
		"?meta=env:prod&meta=team%3Ab": "w2",
	} {
		if got := names(e.do("GET", "/api/webtask/test"+q, e.tenant, "")); got != want {
			t.Errorf("list %q = %q, want %q", q, got, want)
		}
	}
	wantError(t, e.do("GET", "/api/webtask/test?meta=nocolon", e.tenant, ""), 400, "meta filters must have the form key:value")
	wantError(t, e.do("GET", "/api/webtask/test?limit=-1", e.tenant, ""), 400, "")

	// Upsert without meta deletes the meta.
	e.do("PUT", "/api/webtask/test/w1", e.tenant, `{"code":"y"}`)
	if g := decode[types.Webtask](t, e.do("GET", "/api/webtask/test/w1", e.tenant, "")); len(g.Meta) != 0 {
		t.Fatalf("meta kept: %v", g.Meta)
	}

	if w := e.do("DELETE", "/api/webtask/test/w1", e.tenant, ""); w.Code != 204 || w.Body.Len() != 0 {
		t.Fatalf("delete %d %s", w.Code, w.Body)
	}
	wantError(t, e.do("DELETE", "/api/webtask/test/w1", e.tenant, ""), 404, "webtask not found")
	wantError(t, e.do("GET", "/api/webtask/test/w1", e.tenant, ""), 404, "webtask not found")

	// All containers: master only.
	if got := names(e.do("GET", "/api/webtask", e.master, "")); got != "w2,w3" {
		t.Fatalf("list all %q", got)
	}
	wantError(t, e.do("GET", "/api/webtask", e.tenant, ""), 403, msgAdminOnly)
}

func TestAdminSandboxes(t *testing.T) {
	e := newEnv(t, Config{})
	w := e.do("GET", "/api/admin/sandboxes", e.master, "")
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != "[]" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	e.sbx.infos = []types.SandboxInfo{{ID: "sb1", Container: "test", Pid: 42, State: types.SandboxRunning}}
	infos := decode[[]types.SandboxInfo](t, e.do("GET", "/api/admin/sandboxes", e.master, ""))
	if len(infos) != 1 || infos[0].ID != "sb1" || infos[0].Pid != 42 {
		t.Fatalf("%+v", infos)
	}
	wantError(t, e.do("GET", "/api/admin/sandboxes", e.tenant, ""), 403, msgAdminOnly)
	wantError(t, e.do("DELETE", "/api/admin/sandboxes/sb1", e.tenant, ""), 403, msgAdminOnly)
	if w := e.do("DELETE", "/api/admin/sandboxes/sb1", e.master, ""); w.Code != 204 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	wantError(t, e.do("DELETE", "/api/admin/sandboxes/sb1", e.master, ""), 404, "sandbox not found")
}

func TestEchoErrorsAreJSON(t *testing.T) {
	e := newEnv(t, Config{})
	wantError(t, e.do("GET", "/nope", "", ""), 404, "Not Found")
	wantError(t, e.do("PATCH", "/api/webtask/test/x", e.tenant, ""), 405, "Method Not Allowed")
	if w := e.do("HEAD", "/nope", "", ""); w.Code != 404 || w.Body.Len() != 0 {
		t.Fatalf("HEAD %d %q", w.Code, w.Body)
	}
}

// TestBadInputs: every bad request is a 4xx JSON error and stores nothing.
func TestBadInputs(t *testing.T) {
	e := newEnv(t, Config{MaxBodyBytes: 1024})
	expired := e.sign(&token.Claims{Ten: "test", Dd: intp(1), Exp: e.now.Unix() - 1})
	notYet := e.sign(&token.Claims{Ten: "test", Dd: intp(1), Nbf: e.now.Unix() + 60})
	ks := *e.ring.Current()
	ks.ID = "unknownkid"
	wrongKid, _ := token.Sign(&ks, &token.Claims{Ten: "test"})
	parts := strings.Split(e.tenant, ".")
	badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	big := `{"code":"` + strings.Repeat("x", 2000) + `"}`
	name300 := strings.Repeat("n", 300)

	for _, tc := range []struct {
		name, method, path, tok, body string
		hdr                           []string
		status                        int
		msg                           string
	}{
		{"malformed json issue", "POST", "/api/tokens/issue", e.tenant, `{"ten":`, nil, 400, "the request body must be a JSON object of token claims"},
		{"malformed json put", "PUT", "/api/webtask/test/x", e.tenant, `{"code":`, nil, 400, ""},
		{"wrong type put", "PUT", "/api/webtask/test/x", e.tenant, `{"code":1}`, nil, 400, ""},
		{"wrong type issue", "POST", "/api/tokens/issue", e.tenant, `{"ten":"test","jtn":5,"code":"x"}`, nil, 400, "the `jtn` claim must be a string"},
		{"unknown field put", "PUT", "/api/webtask/test/x", e.tenant, `{"code":"x","bogus":1}`, nil, 400, `invalid JSON body: unknown field "bogus"`},
		{"unknown claim", "POST", "/api/tokens/issue", e.tenant, `{"ten":"test","bogus":1}`, nil, 400, "unsupported claim `bogus`"},
		{"code and url issue", "POST", "/api/tokens/issue", e.tenant, `{"ten":"test","jtn":"x","code":"x","url":"https://x"}`, nil, 400, "the `code` and `url` claims cannot both be specified"},
		{"code and url put", "PUT", "/api/webtask/test/x", e.tenant, `{"code":"x","url":"https://x"}`, nil, 400, "exactly one of `code` and `url` is required"},
		{"neither code nor url", "PUT", "/api/webtask/test/x", e.tenant, `{}`, nil, 400, "exactly one of `code` and `url` is required"},
		{"null body put", "PUT", "/api/webtask/test/x", e.tenant, `null`, nil, 400, ""},
		{"empty body put", "PUT", "/api/webtask/test/x", e.tenant, ``, nil, 400, "the request body must be a JSON object"},
		{"dotdot name escaped", "PUT", "/api/webtask/test/..%2Fx", e.tenant, `{"code":"x"}`, nil, 400, "invalid webtask name"},
		{"dotdot name", "PUT", "/api/webtask/test/..", e.tenant, `{"code":"x"}`, nil, 400, "invalid webtask name"},
		{"dotdot jtn", "POST", "/api/tokens/issue", e.tenant, `{"ten":"test","jtn":"../x","code":"x"}`, nil, 400, "the `jtn` claim must be a valid webtask name"},
		{"empty name", "PUT", "/api/webtask/test/", e.tenant, `{"code":"x"}`, nil, 404, "Not Found"},
		{"empty jtn", "POST", "/api/tokens/issue", e.tenant, `{"ten":"test","jtn":"","code":"x"}`, nil, 400, "the `jtn` claim must be a valid webtask name"},
		{"empty container run", "GET", "/api/run//x", "", ``, nil, 400, "invalid container name"},
		{"300-char name", "PUT", "/api/webtask/test/" + name300, e.tenant, `{"code":"x"}`, nil, 400, "invalid webtask name"},
		{"300-char jtn", "POST", "/api/tokens/issue", e.tenant, `{"ten":"test","jtn":"` + name300 + `","code":"x"}`, nil, 400, "the `jtn` claim must be a valid webtask name"},
		{"bad container", "PUT", "/api/webtask/te%20st/x", e.master, `{"code":"x"}`, nil, 400, "invalid container name"},
		{"body over limit put", "PUT", "/api/webtask/test/x", e.tenant, big, nil, 413, "request body exceeds 1024 bytes"},
		{"body over limit issue", "POST", "/api/tokens/issue", e.tenant, big, nil, 413, "request body exceeds 1024 bytes"},
		{"body over limit run", "POST", "/api/run/test", e.tenant, big, nil, 413, "request body exceeds 1024 bytes"},
		{"no credential", "PUT", "/api/webtask/test/x", "", `{"code":"x"}`, nil, 403, msgNoAuth},
		{"basic auth", "PUT", "/api/webtask/test/x", "", `{"code":"x"}`, []string{"Authorization", "Basic Zm9vOmJhcg=="}, 403, msgUnexpectedAuth},
		{"bad signature", "PUT", "/api/webtask/test/x", badSig, `{"code":"x"}`, nil, 403, "invalid JWT token signature"},
		{"garbage token", "POST", "/api/tokens/issue", "abc", `{}`, nil, 403, "malformed JWT token"},
		{"expired", "PUT", "/api/webtask/test/x", expired, `{"code":"x"}`, nil, 403, "expired JWT token"},
		{"not yet valid", "POST", "/api/tokens/issue", notYet, wtCreateBody, nil, 403, "not yet valid JWT token"},
		{"wrong kid", "PUT", "/api/webtask/test/x", wrongKid, `{"code":"x"}`, nil, 403, "JWT token signed with an untrusted key"},
		{"foreign container put", "PUT", "/api/webtask/other/x", e.tenant, `{"code":"x"}`, nil, 403, "not authorized to perform operation on tenant `other`"},
		{"foreign container get", "GET", "/api/webtask/other/x", e.tenant, ``, nil, 403, "not authorized to perform operation on tenant `other`"},
		{"foreign container list", "GET", "/api/webtask/other", e.tenant, ``, nil, 403, "not authorized to perform operation on tenant `other`"},
		{"foreign container delete", "DELETE", "/api/webtask/other/x", e.tenant, ``, nil, 403, "not authorized to perform operation on tenant `other`"},
		{"foreign ten issue", "POST", "/api/tokens/issue", e.tenant, `{"ten":"other","jtn":"x","code":"x"}`, nil, 403, "the `ten` claim must be within the authentication token's `ten`: container `other` is not allowed"},
		{"admin api with tenant token", "GET", "/api/admin/sandboxes", e.tenant, ``, nil, 403, msgAdminOnly},
		{"leaf token cannot issue", "POST", "/api/tokens/issue", e.sign(&token.Claims{Ten: "test", Dd: intp(0)}), wtCreateBody, nil, 400, "The authentication webtask token cannot be used to issue new webtask tokens."},
		{"webtask url claim", "POST", "/api/tokens/issue", e.tenant, `{"ten":"test","jtn":"x","url":"webtask://victim/code"}`, nil, 400, "the `url` claim must be an http or https URL"},
		{"bad url put", "PUT", "/api/webtask/test/x", e.tenant, `{"url":"file:///etc/passwd"}`, nil, 400, "the `url` field must be an http or https URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.fstore.writeCount()
			w := e.do(tc.method, tc.path, tc.tok, tc.body, tc.hdr...)
			wantError(t, w, tc.status, tc.msg)
			if e.fstore.writeCount() != before {
				t.Fatal("a refused request wrote to the store")
			}
			if e.runner.count() != 0 {
				t.Fatal("a refused request reached the runner")
			}
		})
	}
}

// TestWithRealStore runs issue -> run -> list -> delete over store.Store.
func TestWithRealStore(t *testing.T) {
	e := buildEnv(t, envOptions{realStore: true})
	if w := e.do("POST", "/api/tokens/issue", e.tenant, wtCreateBody); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if w := e.do("GET", "/api/run/test/hello/x?q=1", "", ""); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	req := e.runner.last(t)
	if req.Secrets["SECRET"] != "s3cr3t" || req.CodeHash != hashCode([]byte(req.Code)) || req.URL != "/api/run/test/hello/x?q=1" {
		t.Fatalf("%+v", req)
	}
	items := decode[[]types.Webtask](t, e.do("GET", "/api/webtask/test?meta=k:v", e.tenant, ""))
	if len(items) != 1 || items[0].Name != "hello" {
		t.Fatalf("%+v", items)
	}
	g := decode[types.Webtask](t, e.do("GET", "/api/webtask/test/hello?decrypt=true&fetch_code=true", e.tenant, ""))
	if g.Secrets["SECRET"] != "s3cr3t" || g.Code == nil {
		t.Fatalf("%+v", g)
	}
	full := decode[map[string]any](t, e.do("GET", "/api/tokens/inspect?token="+g.Token+"&decrypt=true&meta=1", e.tenant, ""))
	if full["ectx"].(map[string]any)["SECRET"] != "s3cr3t" {
		t.Fatalf("%v", full)
	}
	if w := e.do("DELETE", "/api/webtask/test/hello", e.tenant, ""); w.Code != 204 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	wantError(t, e.do("GET", "/api/run/test/hello", "", ""), 404, msgNoWebtask)
}

func BenchmarkRunHandler(b *testing.B) {
	e := newEnv(b, Config{})
	e.do("POST", "/api/tokens/issue", e.tenant, wtCreateBody)
	e.runner.resp = &agent.Response{Status: 200, Headers: map[string][]string{"content-type": {"application/json"}}, Body: []byte(`{}`)}
	runner := &benchRunner{resp: e.runner.resp}
	e.srv.runner = runner
	r := httptest.NewRequest("GET", "/api/run/test/hello/sub?x=1", nil)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("User-Agent", "bench")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

type benchRunner struct{ resp *agent.Response }

func (r *benchRunner) Invoke(_ context.Context, _ string, _ *agent.Request) (*sandbox.Call, error) {
	return sandbox.BufferedCall(r.resp.Status, r.resp.Headers, r.resp.Body), nil
}

func TestRevokedTokenRefused(t *testing.T) {
	e := buildEnv(t, envOptions{deps: func(_ *env, d *Deps) {
		d.Revoked = func(jtis []string) (bool, error) {
			for _, j := range jtis {
				if j == "0123456789abcdef0123456789abcdef" {
					return true, nil
				}
			}
			return false, nil
		}
	}})
	revoked := e.sign(&token.Claims{Ten: "test", Jti: "0123456789abcdef0123456789abcdef"})
	wantError(t, e.do("GET", "/api/webtask/test", revoked, ""), 403, "token is revoked")
	if w := e.do("GET", "/api/webtask/test", e.tenant, ""); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}
