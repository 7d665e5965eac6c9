package daemon_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

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
	cfg.Sandbox.PoolSize = 0
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

// TestReplayedInvocationIDIsRefused is issue 11's acceptance 2 (second
// half), through the real agent: webtask code that writes storage and
// token messages naming other invocations' (sequential) ids on the agent's
// channel itself (fd 3), while another webtask of its container is
// running, changes nothing: it lacks their capabilities.
func TestReplayedInvocationIDIsRefused(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 0
	env := Start(t, cfg)
	// The victim marks its storage, then holds its invocation open until
	// the test lets it go (it polls its storage for "go").
	env.PutWebtask("acme", "victim", `module.exports = (ctx, cb) => {
  ctx.storage.set({ state: 'running' }, { force: 1 }, (err) => {
    if (err) return cb(err);
    const poll = () => ctx.storage.get((err, d) => {
      if (err) return cb(err);
      if (d && d.state === 'go') return cb(null, { done: true });
      setTimeout(poll, 20);
    });
    poll();
  });
};`, nil)
	env.PutWebtask("acme", "attacker", `const fs = require('fs');
module.exports = (ctx, cb) => {
  let lines = '';
  for (let id = 1; id <= 20; id++) {
    lines += JSON.stringify({ op: 'storage', id: id, sid: 1e9 + 2 * id, action: 'set', data: '{"state":"pwned"}', force: true }) + '\n';
    lines += JSON.stringify({ op: 'token', id: id, sid: 1e9 + 2 * id + 1, claims: {} }) + '\n';
  }
  const buf = Buffer.from(lines);
  for (let off = 0, tries = 0; off < buf.length && tries < 1e6; tries++) {
    try { off += fs.writeSync(3, buf, off); } catch (e) { if (e.code !== 'EAGAIN') throw e; }
  }
  cb(null, { sent: true });
};`, nil)
	// Not env.Call: it may not fail the test from another goroutine.
	victim := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Get(env.Base + "/api/run/acme/victim")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		victim <- err
	}()
	var etag int64
	state := func() string {
		r := env.Call("GET", "/api/webtask/acme/victim/data", env.Master, nil)
		MustStatus(t, r, 200, "victim's storage")
		var d struct {
			Data string `json:"data"`
			Etag *int64 `json:"etag"`
		}
		r.JSON(t, &d)
		if d.Etag != nil {
			etag = *d.Etag
		}
		return d.Data
	}
	WaitFor(t, "the victim to run", 30*time.Second, func() bool { return strings.Contains(state(), "running") })
	MustStatus(t, env.Call("GET", "/api/run/acme/attacker", "", nil), 200, "attacker")
	// The attacker's messages were read before its result (one channel,
	// in order): the victim's storage is still its own.
	if s := state(); strings.Contains(s, "pwned") {
		t.Fatalf("another invocation wrote the victim's storage: %s", s)
	}
	MustStatus(t, env.Call("PUT", "/api/webtask/acme/victim/data", env.Master, map[string]any{"data": `{"state":"go"}`}), 200, "let the victim go")
	if err := Receive(t, victim, 30*time.Second, "the victim's answer"); err != nil {
		t.Fatalf("victim: %v", err)
	}
	// Exactly two writes ever happened (the victim's and the test's): a
	// forged write that landed late would show in the write counter.
	if s := state(); !strings.Contains(s, "go") || etag != 2 {
		t.Fatalf("victim's storage %s with etag %d, want the test's write as the second", s, etag)
	}
}
