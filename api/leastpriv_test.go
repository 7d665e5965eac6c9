package api

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/store/token"
)

// TestBoundTokenRefusedOnManagementRoutes is issue 11's acceptance 3
// (first half): a token bound to one webtask runs it, uses its own
// storage and issues narrower tokens; every management route of its
// container refuses it with 403.
func TestBoundTokenRefusedOnManagementRoutes(t *testing.T) {
	e := newSecEnv(t)
	code := `module.exports = (cb) => cb(null, 1)`
	mine := e.issue(e.master, `{"ten":"test","jtn":"mine","code":"`+code+`","dd":1}`)
	e.issue(e.master, `{"ten":"test","jtn":"other","code":"`+code+`"}`)
	if w := e.do("PUT", "/api/cron/test/other", e.master, `{"schedule":"*/5 * * * *"}`); w.Code != 200 {
		t.Fatalf("cron put: %d %s", w.Code, w.Body)
	}
	refused := []struct{ method, target, body string }{
		{"GET", "/api/webtask/test", ""},
		{"GET", "/api/webtask", ""},
		{"GET", "/api/webtask/test/other", ""},
		{"PUT", "/api/webtask/test/other", `{"code":"module.exports = (cb) => cb(null, 2)"}`},
		{"DELETE", "/api/webtask/test/other", ""},
		{"GET", "/api/webtask/test/mine", ""},
		{"PUT", "/api/webtask/test/mine", `{"code":"module.exports = (cb) => cb(null, 2)"}`},
		{"DELETE", "/api/webtask/test/mine", ""},
		{"GET", "/api/webtask/test/other/data", ""},
		{"PUT", "/api/webtask/test/other/data", `{"data":"{}"}`},
		{"GET", "/api/cron/test", ""},
		{"GET", "/api/cron/test/other", ""},
		{"PUT", "/api/cron/test/other", `{"schedule":"* * * * *"}`},
		{"PUT", "/api/cron/test/mine", `{"schedule":"* * * * *"}`},
		{"DELETE", "/api/cron/test/other", ""},
		{"PUT", "/api/cron/test/other/state", `{"state":"inactive"}`},
		{"GET", "/api/cron/test/other/history", ""},
		{"GET", "/api/logs/tenant/test", ""},
		{"GET", "/api/tokens/inspect?token=" + e.tenant, ""},
		{"POST", "/api/tokens/issue", `{"jtn":"third"}`},
		{"GET", "/api/admin/sandboxes", ""},
		{"GET", "/api/admin/status", ""},
		{"POST", "/api/env/node/modules", `{"modules":[{"name":"lodash","version":"4.17.21"}]}`},
		{"GET", "/api/env/node/modules", ""},
	}
	for _, r := range refused {
		w := e.do(r.method, r.target, mine, r.body)
		if w.Code != 403 && !(r.target == "/api/tokens/issue" && w.Code == 400) {
			t.Errorf("%s %s with a webtask-bound token: %d %s, want 403", r.method, r.target, w.Code, w.Body)
		}
	}
	// Nothing changed.
	if w := e.do("GET", "/api/webtask/test/other", e.master, ""); w.Code != 200 {
		t.Fatalf("other webtask after the refusals: %d", w.Code)
	}
	if w := e.do("GET", "/api/cron/test/other", e.master, ""); w.Code != 200 {
		t.Fatalf("other cron job after the refusals: %d", w.Code)
	}
	// What it may do.
	for _, r := range []struct{ method, target, body string }{
		{"GET", "/api/run/test/mine", ""},
		{"PUT", "/api/webtask/test/mine/data", `{"data":"{\"n\":1}"}`},
		{"GET", "/api/webtask/test/mine/data", ""},
		{"GET", "/api/tokens/inspect?token=" + mine, ""},
	} {
		if w := e.do(r.method, r.target, mine, r.body); w.Code != 200 {
			t.Errorf("%s %s with its own token: %d %s", r.method, r.target, w.Code, w.Body)
		}
	}
	child := e.issue(mine, `{"dd":0}`)
	if w := e.do("GET", "/api/tokens/inspect?token="+child, mine, ""); w.Code != 200 {
		t.Errorf("inspect its child: %d %s", w.Code, w.Body)
	}
	if w := e.do("GET", "/api/webtask/test", child, ""); w.Code != 403 {
		t.Errorf("its child lists the container: %d", w.Code)
	}
}

// TestCronRecordsShowNoWiderToken: a job given a tenant token keeps it
// (its runs use it) but its record does not show it; a job token bound to
// the job's webtask is shown.
func TestCronRecordsShowNoWiderToken(t *testing.T) {
	e := newSecEnv(t)
	own := e.issue(e.master, `{"ten":"test","jtn":"w","code":"module.exports = (cb) => cb(null, 1)"}`)
	if w := e.do("PUT", "/api/cron/test/w", e.master, `{"schedule":"*/5 * * * *","token":"`+e.tenant+`"}`); w.Code != 200 {
		t.Fatalf("cron put: %d %s", w.Code, w.Body)
	}
	for _, target := range []string{"/api/cron/test/w", "/api/cron/test"} {
		w := e.do("GET", target, e.tenant, "")
		if w.Code != 200 || strings.Contains(w.Body.String(), e.tenant) {
			t.Fatalf("GET %s shows the job's tenant token: %d %s", target, w.Code, w.Body)
		}
	}
	if w := e.do("PUT", "/api/cron/test/w", e.master, `{"schedule":"*/5 * * * *","token":"`+own+`"}`); w.Code != 200 {
		t.Fatalf("cron put: %d %s", w.Code, w.Body)
	}
	if w := e.do("GET", "/api/cron/test/w", e.tenant, ""); !strings.Contains(w.Body.String(), own) {
		t.Fatalf("the webtask's own job token is not shown: %s", w.Body)
	}
}

// TestChildCountsAgainstAncestorBuckets: the token limits are not
// inherited, but a child's requests count against its parent's buckets
// (and a grandchild's against both).
func TestChildCountsAgainstAncestorBuckets(t *testing.T) {
	e := newSecEnv(t)
	parent := e.issue(e.master, `{"ten":"test","lts":"4","dd":3}`)
	child := e.issue(parent, `{}`)                                       // the parent's 1st request
	grandchild := e.issue(child, `{}`)                                   // its 2nd
	if w := e.do("GET", "/api/webtask/test", child, ""); w.Code != 200 { // 3rd
		t.Fatalf("child: %d %s", w.Code, w.Body)
	}
	if w := e.do("GET", "/api/webtask/test", grandchild, ""); w.Code != 200 { // 4th
		t.Fatalf("grandchild: %d %s", w.Code, w.Body)
	}
	for _, tok := range []string{child, grandchild, parent} {
		wantError(t, e.do("GET", "/api/webtask/test", tok, ""), 429, "rate limit exceeded: the token allows 4 requests per second (`lts`)")
	}
	// Unrelated tokens are not limited by it.
	if w := e.do("GET", "/api/webtask/test", e.tenant, ""); w.Code != 200 {
		t.Fatalf("unrelated token: %d", w.Code)
	}
}

// TestLogStreamEndsOnRevocation: an open log stream ends within a second
// of its token's revocation (bounded wait; the stream's re-check runs
// every logRecheckInterval).
func TestLogStreamEndsOnRevocation(t *testing.T) {
	e := newSecEnv(t)
	tok := e.issue(e.master, `{"ten":"test","dd":1}`)
	streamEndsAfter(t, e.env, tok, "revocation", func() {
		if w := e.do("POST", "/api/tokens/revoke?token="+tok, e.master, ""); w.Code != 200 {
			t.Fatalf("revoke: %d %s", w.Code, w.Body)
		}
	})
}

// TestLogStreamEndsOnExpiry: the same when the token expires while the
// stream is open (the daemon's clock passes its exp).
func TestLogStreamEndsOnExpiry(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	e := buildEnv(t, envOptions{realStore: true, deps: func(_ *env, d *Deps) {
		d.Now = func() time.Time { return time.Unix(0, now.Load()) }
	}})
	tok := e.sign(&token.Claims{Ten: "test", Jti: "0123456789abcdef0123456789abcdef", Exp: time.Unix(0, now.Load()).Add(time.Hour).Unix()})
	streamEndsAfter(t, e, tok, "expiry", func() { now.Add(int64(2 * time.Hour)) })
}

// streamEndsAfter opens a log stream of container test with tok, checks
// that it stays open, runs event and requires the stream to end within a
// second.
func streamEndsAfter(t *testing.T, e *env, tok, what string, event func()) {
	t.Helper()
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/logs/tenant/test?key=" + tok)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != ":ok\n" {
		t.Fatalf("stream start %q %v", line, err)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, br)
		ended <- err
	}()
	select {
	case err := <-ended:
		t.Fatalf("stream ended before the %s: %v", what, err)
	case <-time.After(3 * logRecheckInterval):
	}
	event()
	at := time.Now()
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("stream ended with %v", err)
		}
		t.Logf("stream ended %s after the %s", time.Since(at), what)
	case <-time.After(time.Second):
		t.Fatalf("the stream is still open a second after the %s", what)
	}
}

// TestAncestorLimitsTravelWithTheToken: the ancestors' limits are claims
// of the child (alim), so they bind it with no state of the daemon (after
// a restart, before the parent is ever seen).
func TestAncestorLimitsTravelWithTheToken(t *testing.T) {
	e := newSecEnv(t)
	child := e.sign(&token.Claims{Ten: "test", Ca: []string{"parent-jti"},
		Alim: map[string]token.TokenLimits{"parent-jti": {Lts: 1}}})
	if w := e.do("GET", "/api/webtask/test", child, ""); w.Code != 200 {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	wantError(t, e.do("GET", "/api/webtask/test", child, ""), 429, "rate limit exceeded: the token allows 1 requests per second (`lts`)")
}
