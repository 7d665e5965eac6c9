package daemon_test

import (
	"strings"
	"testing"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// dumpCode answers everything the webtask can see of its request.
const dumpCode = `module.exports = (ctx, req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ headers: req.headers, url: req.url, query: ctx.query, data: ctx.data,
    ctxHeaders: ctx.headers, token: ctx.token || null, env: process.env }));
};`

// TestCallerCredentialsStayOutOfTheSandbox is issue 11's acceptance 2
// (first half): the code of an unnamed run never sees the token that
// authorized it, whether it came as a Bearer header or as ?key=, nor the
// run's webtask_* options; a named run's own Authorization header and key
// parameter pass through.
func TestCallerCredentialsStayOutOfTheSandbox(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.PoolSize = 0
	env := Start(t, cfg)
	r := env.Call("POST", "/api/tokens/issue", env.Master, map[string]any{"ten": "acme"})
	MustStatus(t, r, 200, "issue tenant token")
	tenant := strings.TrimSpace(string(r.Body))

	type seen struct {
		Headers    map[string]any `json:"headers"`
		URL        string         `json:"url"`
		Query      map[string]any `json:"query"`
		CtxHeaders map[string]any `json:"ctxHeaders"`
		Token      *string        `json:"token"`
	}
	check := func(what string, r Response) seen {
		t.Helper()
		MustStatus(t, r, 200, what)
		if strings.Contains(string(r.Body), tenant) {
			t.Fatalf("%s: the webtask saw the token that authorized it: %s", what, r.Body)
		}
		var s seen
		r.JSON(t, &s)
		if s.Query["x"] != "1" || !strings.Contains(s.URL, "x=1") {
			t.Fatalf("%s: the webtask's own query was lost: %+v", what, s)
		}
		if strings.Contains(s.URL, "webtask_") || strings.Contains(s.URL, "key=") {
			t.Fatalf("%s: url %q carries what the daemon consumed", what, s.URL)
		}
		return s
	}
	s := check("unnamed run, Bearer", env.Call("POST", "/api/run/acme?x=1&webtask_pb=1", tenant, dumpCode))
	if _, ok := s.Headers["authorization"]; ok {
		t.Fatalf("authorization header reached the webtask: %+v", s.Headers)
	}
	check("unnamed run, key", env.Call("POST", "/api/run/acme?key="+tenant+"&x=1", "", dumpCode))

	env.PutWebtask("acme", "dump", dumpCode, nil)
	s = check("named run", env.Call("GET", "/api/run/acme/dump/sub?x=1&webtask_no_cache=1", "", nil,
		"Authorization", "Bearer the-webtasks-own-credential"))
	if s.Headers["authorization"] != "Bearer the-webtasks-own-credential" {
		t.Fatalf("a named run's own authorization header did not pass: %+v", s.Headers)
	}
	if !strings.HasSuffix(strings.SplitN(s.URL, "?", 2)[0], "/sub") {
		t.Fatalf("named run url %q", s.URL)
	}
}
