package api

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/keyring"
	"github.com/webtaskd/webtaskd/store/token"
)

// secEnv is an env over a real store wired for revocation and key admin.
type secEnv struct {
	*env
	st        *store.Store
	refreshes int
}

func newSecEnv(t *testing.T) *secEnv {
	t.Helper()
	se := &secEnv{}
	se.env = buildEnv(t, envOptions{realStore: true, deps: func(_ *env, d *Deps) {
		d.OnKeysChanged = func() error { se.refreshes++; return nil }
	}})
	se.st = se.env.st
	return se
}

// issue issues body with tok and returns the raw token (200 required).
func (e *secEnv) issue(tok, body string) string {
	e.t.Helper()
	w := e.do("POST", "/api/tokens/issue", tok, body)
	if w.Code != 200 {
		e.t.Fatalf("issue %s: %d %s", body, w.Code, w.Body)
	}
	return w.Body.String()
}

func TestRevokeRulesAndRecursion(t *testing.T) {
	e := newSecEnv(t)
	parent := e.issue(e.master, `{"ten":"test","dd":3}`)
	child := e.issue(parent, `{"dd":2,"dr":1}`)
	selfRevocable := e.issue(parent, `{"dd":0}`)
	// The child creates a named webtask: its token descends from both.
	e.issue(child, `{"code":"module.exports = cb => cb(null, 1)","jtn":"w","ectx":{"S":"v"}}`)
	sibling := e.issue(e.master, `{"ten":"test"}`)
	if w := e.do("GET", "/api/run/test/w", "", ""); w.Code != 200 {
		t.Fatalf("run before revoke: %d %s", w.Code, w.Body)
	}

	revoke := func(caller, target string) string { return "/api/tokens/revoke?token=" + url.QueryEscape(target) }
	wantError(t, e.do("POST", revoke(child, child), child, ""), 403, "the token may not revoke itself (dr:1)")
	wantError(t, e.do("POST", revoke(sibling, child), sibling, ""), 403,
		"insufficient permissions to revoke this token: only the token itself, its ancestors and master tokens may")
	wantError(t, e.do("POST", "/api/tokens/revoke", parent, ""), 400, "the token to revoke is required (token query parameter or body)")
	wantError(t, e.do("POST", revoke(parent, "a.b.c"), parent, ""), 400,
		"the token to revoke is malformed or not signed by a live key of this server")
	if e.st.RevokedCount() != 0 {
		t.Fatal("a refused revocation was recorded")
	}

	// Self-revocation without dr, token in a form body.
	w := e.do("POST", "/api/tokens/revoke", selfRevocable, "token="+url.QueryEscape(selfRevocable), "Content-Type", "application/x-www-form-urlencoded")
	if w.Code != 200 {
		t.Fatalf("self revoke: %d %s", w.Code, w.Body)
	}
	wantError(t, e.do("GET", "/api/webtask/test", selfRevocable, ""), 403, "token is revoked")

	// The parent revokes the child (JSON body): the child and the webtask
	// token it issued are refused at once, the webtask no longer runs.
	if w := e.do("POST", "/api/tokens/revoke", parent, `{"token":"`+child+`"}`); w.Code != 200 {
		t.Fatalf("revoke child: %d %s", w.Code, w.Body)
	}
	wantError(t, e.do("GET", "/api/webtask/test", child, ""), 403, "token is revoked")
	runs := e.runner.count()
	wantError(t, e.do("GET", "/api/run/test/w", "", ""), 403, "token is revoked")
	if e.runner.count() != runs {
		t.Fatal("a run of a revoked webtask reached the runner")
	}
	if w := e.do("GET", "/api/webtask/test", parent, ""); w.Code != 200 {
		t.Fatalf("the parent is not revoked: %d %s", w.Code, w.Body)
	}
	// Revoking again is fine (idempotent), also for the master.
	if w := e.do("POST", revoke(e.master, child), e.master, ""); w.Code != 200 {
		t.Fatalf("master revoke: %d %s", w.Code, w.Body)
	}
	if e.refreshes != 3 {
		t.Fatalf("OnKeysChanged called %d times, want 3", e.refreshes)
	}
	// Re-creating the webtask with a fresh lineage makes it run again.
	e.issue(e.master, `{"ten":"test","code":"module.exports = cb => cb(null, 2)","jtn":"w"}`)
	if w := e.do("GET", "/api/run/test/w", "", ""); w.Code != 200 {
		t.Fatalf("re-created webtask: %d %s", w.Code, w.Body)
	}
}

func TestStoredTokenExpiryStopsRuns(t *testing.T) {
	e := newSecEnv(t)
	exp := e.now.Unix() + 60
	e.issue(e.master, `{"ten":"test","code":"module.exports = cb => cb(null, 1)","jtn":"w","exp":`+itoa(exp)+`}`)
	if w := e.do("GET", "/api/run/test/w", "", ""); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	e.now = e.now.Add(61 * time.Second)
	wantError(t, e.do("GET", "/api/run/test/w", "", ""), 403, "expired JWT token")
}

func TestTokenRateLimit(t *testing.T) {
	e := newSecEnv(t)
	tok := e.issue(e.master, `{"ten":"test","lts":"5"}`)
	for i := 1; i <= 5; i++ {
		if w := e.do("GET", "/api/webtask/test", tok, ""); w.Code != 200 {
			t.Fatalf("call %d: %d %s", i, w.Code, w.Body)
		}
	}
	w := e.do("GET", "/api/webtask/test", tok, "")
	wantError(t, w, 429, "rate limit exceeded: the token allows 5 requests per second (`lts`)")
	if ra := w.Header().Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After = %q", ra)
	}
	// Other tokens are not affected; the limited one recovers.
	if w := e.do("GET", "/api/webtask/test", e.tenant, ""); w.Code != 200 {
		t.Fatalf("other token: %d", w.Code)
	}
	e.now = e.now.Add(200 * time.Millisecond)
	if w := e.do("GET", "/api/webtask/test", tok, ""); w.Code != 200 {
		t.Fatalf("after 200ms (one request refilled): %d %s", w.Code, w.Body)
	}
	wantError(t, e.do("GET", "/api/webtask/test", tok, ""), 429, "")
	e.now = e.now.Add(time.Second)
	for i := 1; i <= 5; i++ {
		if w := e.do("GET", "/api/webtask/test", tok, ""); w.Code != 200 {
			t.Fatalf("after recovery, call %d: %d %s", i, w.Code, w.Body)
		}
	}
}

func TestRunRateLimits(t *testing.T) {
	e := newSecEnv(t)
	// A tenant with a container limit of 3 runs per minute: inherited by
	// every webtask it creates, shared between them.
	tenant := e.issue(e.master, `{"ten":"test","lm":3,"dd":2}`)
	e.issue(tenant, `{"code":"module.exports = cb => cb(null, 1)","jtn":"a"}`)
	e.issue(tenant, `{"code":"module.exports = cb => cb(null, 1)","jtn":"b","lth":100}`)
	for _, n := range []string{"a", "b", "a"} {
		if w := e.do("GET", "/api/run/test/"+n, "", ""); w.Code != 200 {
			t.Fatalf("run %s: %d %s", n, w.Code, w.Body)
		}
	}
	runs := e.runner.count()
	w := e.do("GET", "/api/run/test/b", "", "")
	wantError(t, w, 429, "rate limit exceeded: the container allows 3 requests per minute (`lm`)")
	if ra := w.Header().Get("Retry-After"); ra != "20" {
		t.Fatalf("Retry-After = %q, want 20", ra)
	}
	if e.runner.count() != runs {
		t.Fatal("a limited run reached the runner")
	}
	// Unnamed runs with the tenant token share the container bucket.
	wantError(t, e.do("POST", "/api/run/test", tenant, "module.exports = cb => cb(null, 1)"), 429, "")
	// A webtask of the master (no limits) in the same container runs.
	e.issue(e.master, `{"ten":"test","code":"module.exports = cb => cb(null, 1)","jtn":"free"}`)
	if w := e.do("GET", "/api/run/test/free", "", ""); w.Code != 200 {
		t.Fatalf("unlimited webtask: %d %s", w.Code, w.Body)
	}
	e.now = e.now.Add(20 * time.Second)
	if w := e.do("GET", "/api/run/test/b", "", ""); w.Code != 200 {
		t.Fatalf("after 20s: %d %s", w.Code, w.Body)
	}
}

func TestLimiterTableSweepsFullBuckets(t *testing.T) {
	l := newLimiters()
	now := time.Unix(1_700_000_000, 0)
	for i := 0; i < limiterSweepMin; i++ {
		k := limitKey{scope: 't', id: itoa(int64(i)), per: time.Second, n: 2}
		if err := l.allow(now, []limitCheck{{key: k, claim: "lts", unit: "second"}}); err != nil {
			t.Fatal(err)
		}
	}
	if l.size() != limiterSweepMin {
		t.Fatalf("size %d", l.size())
	}
	// A second later every bucket is full again: the next insertion drops them.
	now = now.Add(time.Second)
	k := limitKey{scope: 't', id: "new", per: time.Second, n: 2}
	if err := l.allow(now, []limitCheck{{key: k, claim: "lts", unit: "second"}}); err != nil {
		t.Fatal(err)
	}
	if l.size() != 1 {
		t.Fatalf("size after sweep %d, want 1", l.size())
	}
}

func TestAllOrNothingAcrossBuckets(t *testing.T) {
	l := newLimiters()
	now := time.Unix(1_700_000_000, 0)
	a := limitCheck{key: limitKey{scope: 't', id: "x", per: time.Minute, n: 10}, claim: "ltm", unit: "minute"}
	b := limitCheck{key: limitKey{scope: 'c', id: "c", per: time.Second, n: 1}, claim: "ls", unit: "second"}
	if err := l.allow(now, []limitCheck{a, b}); err != nil {
		t.Fatal(err)
	}
	if err := l.allow(now, []limitCheck{a, b}); err == nil {
		t.Fatal("second request allowed")
	}
	// The refused request gave its token of bucket a back: 9 left.
	if got := l.m[a.key].TokensAt(now); got != 9 {
		t.Fatalf("bucket a holds %v tokens, want 9", got)
	}
}

func TestRotateAndRetireKeys(t *testing.T) {
	e := newSecEnv(t)
	oldKid := e.ring.Current().ID
	tenant := e.issue(e.master, `{"ten":"test","dd":1}`)
	big := strings.Repeat("é", 32<<10)
	webtaskTok := e.issue(tenant, `{"code":"module.exports = cb => cb(null, 1)","jtn":"w","ectx":{"S":"s3cr3t","BIG":"`+big+`"}}`)

	wantError(t, e.do("POST", "/api/admin/keys/rotate", tenant, ""), 403, msgAdminOnly)
	w := e.do("POST", "/api/admin/keys/rotate", e.master, "")
	info := decode[keyring.KeyInfo](t, w)
	if w.Code != 200 || info.ID == oldKid || !info.Current || e.ring.Current().ID != info.ID {
		t.Fatalf("rotate: %d %s", w.Code, w.Body)
	}
	// Old tokens keep working after rotation; new ones use the new kid.
	if w := e.do("GET", "/api/webtask/test", tenant, ""); w.Code != 200 {
		t.Fatalf("old tenant after rotate: %d", w.Code)
	}
	newTenant := e.issue(e.master, `{"ten":"test","dd":1}`)
	if _, hdr, _ := token.ParseUnverified(newTenant); hdr["kid"] != info.ID {
		t.Fatalf("new token kid %v", hdr["kid"])
	}
	keys := decode[[]keyring.KeyInfo](t, e.do("GET", "/api/admin/keys", e.master, ""))
	if len(keys) != 2 {
		t.Fatalf("keys %+v", keys)
	}

	wantError(t, e.do("POST", "/api/admin/keys/"+info.ID+"/retire", e.master, ""), 409, "cannot retire the current key set: rotate first")
	wantError(t, e.do("POST", "/api/admin/keys/0000000000000000/retire", e.master, ""), 404, `no key set with id "0000000000000000"`)
	wantError(t, e.do("POST", "/api/admin/keys/"+oldKid+"/retire", tenant, ""), 403, msgAdminOnly)

	// The master token of this env was signed by the old key: use a new one.
	master := e.sign(&token.Claims{})
	w = e.do("POST", "/api/admin/keys/"+oldKid+"/retire", master, "")
	res := decode[types.KeyRetirement](t, w)
	if w.Code != 200 || !res.Retired || res.Resigned != 1 || res.Resealed != 1 {
		t.Fatalf("retire: %d %s", w.Code, w.Body)
	}
	// Tokens signed by the retired key are refused.
	wantError(t, e.do("GET", "/api/webtask/test", tenant, ""), 403, "JWT token signed with an untrusted key")
	wantError(t, e.do("GET", "/api/webtask/test", webtaskTok, ""), 403, "JWT token signed with an untrusted key")
	// The stored webtask was re-signed: same jti and lineage, new kid; it
	// runs with its secrets; the master decrypts them through inspect.
	g := decode[types.Webtask](t, e.do("GET", "/api/webtask/test/w", master, ""))
	oldClaims, _, _ := token.ParseUnverified(webtaskTok)
	newClaims, hdr, _ := token.ParseUnverified(g.Token)
	if hdr["kid"] != info.ID || newClaims.Jti != oldClaims.Jti || strings.Join(newClaims.Ca, ",") != strings.Join(oldClaims.Ca, ",") {
		t.Fatalf("re-signed token: kid %v claims %+v (old %+v)", hdr["kid"], newClaims, oldClaims)
	}
	if w := e.do("GET", "/api/run/test/w", "", ""); w.Code != 200 {
		t.Fatalf("run after retire: %d %s", w.Code, w.Body)
	}
	if r := e.runner.last(t); r.Secrets["S"] != "s3cr3t" || r.Secrets["BIG"] != big {
		t.Fatal("secrets changed by retirement")
	}
	full := decode[map[string]any](t, e.do("GET", "/api/tokens/inspect?decrypt=1&token="+g.Token, master, ""))
	if ectx, _ := full["ectx"].(map[string]any); ectx["S"] != "s3cr3t" || ectx["BIG"] != big {
		t.Fatalf("inspect after retire: %v", full["ectx"])
	}
	if e.refreshes != 1 {
		t.Fatalf("OnKeysChanged called %d times", e.refreshes)
	}
	// Retiring again: the kid is no longer a live key set.
	wantError(t, e.do("POST", "/api/admin/keys/"+oldKid+"/retire", master, ""), 404, `no key set with id "`+oldKid+`"`)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestPutWithoutSecretsKeepsThem(t *testing.T) {
	e := newSecEnv(t)
	put := func(tok, body string) int {
		w := e.do("PUT", "/api/webtask/test/k", tok, body)
		return w.Code
	}
	if c := put(e.tenant, `{"code":"module.exports = cb => cb(null, 1)","secrets":{"S":"one"}}`); c != 200 {
		t.Fatal(c)
	}
	// Update without secrets: kept.
	if c := put(e.tenant, `{"code":"module.exports = cb => cb(null, 2)"}`); c != 200 {
		t.Fatal(c)
	}
	e.do("GET", "/api/run/test/k", "", "")
	if r := e.runner.last(t); r.Secrets["S"] != "one" || !strings.Contains(r.Code, "2") {
		t.Fatalf("after update without secrets: %v %q", r.Secrets, r.Code)
	}
	// Another token of the container may not keep what it cannot read.
	other := e.sign(&token.Claims{Ten: "test", Dd: intp(1)})
	wantError(t, e.do("PUT", "/api/webtask/test/k", other, `{"code":"module.exports = cb => cb(null, 3)"}`), 403,
		"not authorized to keep the secrets of this webtask: send `secrets` to replace them")
	// With secrets: replaced (anyone authorized for the container).
	if c := put(other, `{"code":"module.exports = cb => cb(null, 4)","secrets":{"T":"two"}}`); c != 200 {
		t.Fatal(c)
	}
	e.do("GET", "/api/run/test/k", "", "")
	if r := e.runner.last(t); r.Secrets["T"] != "two" || r.Secrets["S"] != nil {
		t.Fatalf("after replace: %v", r.Secrets)
	}
	// Explicitly empty secrets clear them.
	if c := put(other, `{"code":"module.exports = cb => cb(null, 5)","secrets":{}}`); c != 200 {
		t.Fatal(c)
	}
	e.do("GET", "/api/run/test/k", "", "")
	if r := e.runner.last(t); len(r.Secrets) != 0 {
		t.Fatalf("after clearing: %v", r.Secrets)
	}
}
