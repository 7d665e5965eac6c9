package daemon_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// issue issues claims with tok and returns the raw token (200 required).
func issue(t *testing.T, env *Env, tok string, claims map[string]any) string {
	t.Helper()
	r := env.Call("POST", "/api/tokens/issue", tok, claims)
	MustStatus(t, r, 200, "issue")
	return strings.TrimSpace(string(r.Body))
}

// wantErr checks a JSON error answer.
func wantErr(t *testing.T, r Response, status int, msg, what string) {
	t.Helper()
	var b struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		ReqID   string `json:"req_id"`
	}
	if r.Status != status || json.Unmarshal(r.Body, &b) != nil || b.Code != status || b.ReqID == "" || (msg != "" && b.Message != msg) {
		t.Fatalf("%s: got %d %s, want %d %q", what, r.Status, r.Body, status, msg)
	}
}

const echoSecretCode = `module.exports = function (ctx, cb) {
  const s = ctx.secrets || {};
  const h = require('crypto').createHash('sha256').update(s.BIG || '').digest('hex');
  cb(null, { uni: s.UNI, big_len: (s.BIG || '').length, big_sha: h, keys: Object.keys(s).sort() });
};`

// Acceptance 2: a tenant token is confined to its container.
func TestTenantTokenConfinedToItsContainer(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	tenant := issue(t, env, env.Master, map[string]any{"ten": "a", "dd": 1})

	// Create (both ways), list, run (named and unnamed), delete in a.
	r := env.Call("PUT", "/api/webtask/a/hello", tenant, map[string]any{"code": helloCode, "secrets": map[string]string{"K": "v"}})
	MustStatus(t, r, 200, "tenant PUT in a")
	issue(t, env, tenant, map[string]any{"jtn": "echo", "code": `module.exports = cb => cb(null, 'echo')`, "dd": 0, "dr": 1})
	r = env.Call("GET", "/api/webtask/a", tenant, nil)
	MustStatus(t, r, 200, "tenant list a")
	var items []struct{ Name string }
	r.JSON(t, &items)
	if len(items) != 2 {
		t.Fatalf("list a = %s", r.Body)
	}
	MustStatus(t, env.Call("GET", "/api/run/a/hello", "", nil), 200, "run a/hello")
	MustStatus(t, env.Call("POST", "/api/run/a", tenant, `module.exports = cb => cb(null, 1)`), 200, "unnamed run in a")
	MustStatus(t, env.Call("DELETE", "/api/webtask/a/hello", tenant, nil), 204, "tenant delete in a")

	// Container b: 403 everywhere.
	foreign := "not authorized to perform operation on tenant `b`"
	wantErr(t, env.Call("PUT", "/api/webtask/b/x", tenant, map[string]any{"code": helloCode}), 403, foreign, "PUT in b")
	wantErr(t, env.Call("GET", "/api/webtask/b", tenant, nil), 403, foreign, "list b")
	wantErr(t, env.Call("DELETE", "/api/webtask/b/x", tenant, nil), 403, foreign, "delete in b")
	wantErr(t, env.Call("POST", "/api/run/b", tenant, `module.exports = cb => cb(null, 1)`), 403, foreign, "unnamed run in b")
	// Admin APIs: 403.
	admin := "insufficient permissions to call administrative API"
	for _, c := range [][2]string{{"GET", "/api/admin/sandboxes"}, {"GET", "/api/webtask"}, {"GET", "/api/admin/keys"}, {"POST", "/api/admin/keys/rotate"}} {
		wantErr(t, env.Call(c[0], c[1], tenant, nil), 403, admin, c[0]+" "+c[1])
	}
	// Tokens wider than itself: 403.
	wantErr(t, env.Call("POST", "/api/tokens/issue", tenant, map[string]any{"ten": "b"}), 403,
		"the `ten` claim must be within the authentication token's `ten`: container `b` is not allowed", "issue for b")
	wantErr(t, env.Call("POST", "/api/tokens/issue", tenant, map[string]any{"ten": "a,b"}), 403,
		"the `ten` claim must be within the authentication token's `ten`: container `b` is not allowed", "issue for a,b")
	wantErr(t, env.Call("POST", "/api/tokens/issue", tenant, map[string]any{"ten": "/.*/"}), 403,
		"the `ten` claim cannot be a regular expression unless issued by a master token", "issue regex")
	// Its dd:0 children cannot issue at all.
	leaf := issue(t, env, tenant, map[string]any{"dd": 0})
	wantErr(t, env.Call("POST", "/api/tokens/issue", leaf, map[string]any{}), 400,
		"The authentication webtask token cannot be used to issue new webtask tokens.", "dd:0 issue")
	// It cannot revoke the master token.
	wantErr(t, env.Call("POST", "/api/tokens/revoke?token="+env.Master, tenant, nil), 403, "", "tenant revokes master")
	MustStatus(t, env.Call("GET", "/api/webtask/a", env.Master, nil), 200, "master still works")
}

// Acceptance 3: revoking a parent revokes every descendant, at once and
// across a restart.
func TestRevokeParentRevokesDescendantsAcrossRestart(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	env := Start(t, cfg)
	parent := issue(t, env, env.Master, map[string]any{"ten": "a", "dd": 3})
	child := issue(t, env, parent, map[string]any{"dd": 2})
	grandchild := issue(t, env, child, map[string]any{"dd": 1})
	webtask := issue(t, env, child, map[string]any{"jtn": "w", "code": `module.exports = cb => cb(null, 'ok')`, "dd": 0, "dr": 1})
	other := issue(t, env, env.Master, map[string]any{"ten": "a"})
	MustStatus(t, env.Call("GET", "/api/run/a/w", "", nil), 200, "run before revoke")
	for _, tok := range []string{parent, child, grandchild} {
		MustStatus(t, env.Call("GET", "/api/webtask/a", tok, nil), 200, "before revoke")
	}
	// The webtask's own token manages nothing; its storage it may use.
	MustStatus(t, env.Call("GET", "/api/webtask/a", webtask, nil), 403, "webtask token lists")
	MustStatus(t, env.Call("GET", "/api/webtask/a/w/data", webtask, nil), 200, "webtask token reads its storage")

	MustStatus(t, env.Call("POST", "/api/tokens/revoke?token="+url.QueryEscape(parent), env.Master, nil), 200, "revoke parent")
	check := func(when string) {
		t.Helper()
		for name, tok := range map[string]string{"parent": parent, "child": child, "grandchild": grandchild, "webtask": webtask} {
			wantErr(t, env.Call("GET", "/api/webtask/a", tok, nil), 403, "token is revoked", when+": "+name)
		}
		wantErr(t, env.Call("GET", "/api/run/a/w", "", nil), 403, "token is revoked", when+": run of the webtask")
		MustStatus(t, env.Call("GET", "/api/webtask/a", other, nil), 200, when+": unrelated token")
	}
	check("right after revoke")

	env.Stop()
	env = Start(t, cfg)
	check("after restart")
	MustStatus(t, env.Call("GET", "/api/admin/keys", env.Master, nil), 200, "master after restart")
}

// Acceptance 4: rotation and retirement lose nothing; retired-key tokens
// are refused.
func TestKeyRotationAndRetirement(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	env := Start(t, cfg)
	keys := func(tok string) []struct {
		Kid     string `json:"kid"`
		Current bool   `json:"current"`
		Retired bool   `json:"retired"`
	} {
		r := env.Call("GET", "/api/admin/keys", tok, nil)
		MustStatus(t, r, 200, "list keys")
		var out []struct {
			Kid     string `json:"kid"`
			Current bool   `json:"current"`
			Retired bool   `json:"retired"`
		}
		r.JSON(t, &out)
		return out
	}
	oldKid := keys(env.Master)[0].Kid
	tenant := issue(t, env, env.Master, map[string]any{"ten": "a", "dd": 1})
	secrets := map[string]any{"UNI": "clé ✓ 秘密", "BIG": strings.Repeat("x", 1000)}
	issue(t, env, tenant, map[string]any{"jtn": "old", "code": echoSecretCode, "ectx": secrets})
	runSecrets := func(name, what string) {
		t.Helper()
		r := env.Call("GET", "/api/run/a/"+name, "", nil)
		MustStatus(t, r, 200, what)
		var out struct {
			Uni string `json:"uni"`
		}
		r.JSON(t, &out)
		if out.Uni != "clé ✓ 秘密" {
			t.Fatalf("%s: secrets = %s", what, r.Body)
		}
	}
	runSecrets("old", "before rotate")

	MustStatus(t, env.Call("POST", "/api/admin/keys/rotate", env.Master, nil), 200, "rotate")
	ks := keys(env.Master)
	if len(ks) != 2 || ks[1].Kid == oldKid || !ks[1].Current {
		t.Fatalf("keys after rotate: %+v", ks)
	}
	// Old tokens and secrets still work; new ones use the new key.
	MustStatus(t, env.Call("GET", "/api/webtask/a", tenant, nil), 200, "old tenant token after rotate")
	runSecrets("old", "after rotate")
	issue(t, env, tenant, map[string]any{"jtn": "new", "code": echoSecretCode, "ectx": secrets})

	oldMaster := env.Master
	r := env.Call("POST", "/api/admin/keys/"+oldKid+"/retire", oldMaster, nil)
	MustStatus(t, r, 200, "retire old key")
	// The daemon re-minted its master token (the old one was signed by the
	// retired key) into master.token.
	raw, err := os.ReadFile(filepath.Join(cfg.DataDir, "master.token"))
	if err != nil {
		t.Fatal(err)
	}
	master := strings.TrimSpace(string(raw))
	if master == oldMaster || master != env.D.MasterToken() {
		t.Fatal("master token was not re-minted after retiring its key")
	}
	untrusted := "JWT token signed with an untrusted key"
	wantErr(t, env.Call("GET", "/api/webtask/a", tenant, nil), 403, untrusted, "old tenant token after retire")
	wantErr(t, env.Call("GET", "/api/admin/keys", oldMaster, nil), 403, untrusted, "old master after retire")
	ks = keys(master)
	if !ks[0].Retired || ks[0].Kid != oldKid {
		t.Fatalf("keys after retire: %+v", ks)
	}
	runSecrets("old", "webtask created before rotate, after retire")
	runSecrets("new", "webtask created after rotate, after retire")
	// The stored tokens verify: inspect them with decrypt.
	for _, n := range []string{"old", "new"} {
		r := env.Call("GET", "/api/webtask/a/"+n, master, nil)
		MustStatus(t, r, 200, "get "+n)
		var w struct{ Token string }
		r.JSON(t, &w)
		r = env.Call("GET", "/api/tokens/inspect?decrypt=1&token="+url.QueryEscape(w.Token), master, nil)
		MustStatus(t, r, 200, "inspect "+n)
		var claims struct{ Ectx map[string]any }
		r.JSON(t, &claims)
		if !reflect.DeepEqual(claims.Ectx, secrets) {
			t.Fatalf("inspect %s: ectx = %v", n, claims.Ectx)
		}
	}
	// And after a restart.
	env.Stop()
	env = Start(t, cfg)
	runSecrets("old", "after retire and restart")
	wantErr(t, env.Call("GET", "/api/webtask/a", tenant, nil), 403, untrusted, "old tenant token after restart")
}

// Acceptance 5: no secret value in the database files, the daemon's log,
// error responses, or GET /api/webtask without decrypt; only entitled
// callers decrypt.
func TestSecretsDoNotLeak(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	logs := &LogBuffer{}
	env := StartLogged(t, cfg, logs)
	marker := "S3CRET-" + RandHex(8)
	uni := "ünïcødé-" + RandHex(4)
	secrets := map[string]string{"A": marker, "U": uni}
	tenant := issue(t, env, env.Master, map[string]any{"ten": "a", "dd": 1})
	otherTenant := issue(t, env, env.Master, map[string]any{"ten": "a", "dd": 1})
	MustStatus(t, env.Call("PUT", "/api/webtask/a/put", tenant, map[string]any{"code": helloCode, "secrets": secrets}), 200, "PUT")
	wtTok := issue(t, env, tenant, map[string]any{"jtn": "iss", "code": helloCode, "ectx": secrets, "dd": 0, "dr": 1})
	MustStatus(t, env.Call("GET", "/api/run/a/put", "", nil), 200, "run")

	var bodies [][]byte
	keep := func(r Response) Response { bodies = append(bodies, r.Body); return r }
	// Reads without decrypt.
	MustStatus(t, keep(env.Call("GET", "/api/webtask/a/put", tenant, nil)), 200, "get")
	MustStatus(t, keep(env.Call("GET", "/api/webtask/a/iss", env.Master, nil)), 200, "get (master)")
	MustStatus(t, keep(env.Call("GET", "/api/webtask/a", tenant, nil)), 200, "list")
	MustStatus(t, keep(env.Call("GET", "/api/tokens/inspect?meta=1&fetch_code=1&token="+wtTok, tenant, nil)), 200, "inspect")
	// Errors from requests that carry or touch the secrets.
	for _, r := range []Response{
		env.Call("POST", "/api/tokens/issue", tenant, map[string]any{"ten": "b", "ectx": secrets}),
		env.Call("POST", "/api/tokens/issue", tenant, map[string]any{"ectx": secrets, "bogus": marker}),
		env.Call("POST", "/api/tokens/issue", tenant, `{"ectx":{"A":"`+marker+`"`),
		env.Call("PUT", "/api/webtask/a/put", tenant, map[string]any{"code": 1, "secrets": secrets}),
		env.Call("PUT", "/api/webtask/a/put", tenant, `{"code":"x","secrets":{"A":"`+marker+`"}, "junk":1}`),
		env.Call("GET", "/api/webtask/a/put?decrypt=1", otherTenant, nil),
		env.Call("GET", "/api/tokens/inspect?decrypt=1&token="+wtTok, otherTenant, nil),
		env.Call("GET", "/api/tokens/inspect?decrypt=1&token="+wtTok, wtTok, nil),
		env.Call("PUT", "/api/webtask/a/put", otherTenant, map[string]any{"code": helloCode}),
	} {
		keep(r)
		if r.Status < 400 || r.Status >= 500 {
			t.Errorf("expected a 4xx, got %d %s", r.Status, r.Body)
		}
	}
	// Entitled callers decrypt: the master and the issuing tenant.
	for _, tok := range []string{env.Master, tenant} {
		r := env.Call("GET", "/api/tokens/inspect?decrypt=1&token="+url.QueryEscape(wtTok), tok, nil)
		MustStatus(t, r, 200, "inspect decrypt")
		var c struct{ Ectx, Secrets map[string]string }
		r.JSON(t, &c)
		if !reflect.DeepEqual(c.Ectx, secrets) || !reflect.DeepEqual(c.Secrets, secrets) {
			t.Fatalf("decrypt: %s", r.Body)
		}
	}
	// A token of the same container that did not issue the webtask may not.
	wantErr(t, env.Call("GET", "/api/tokens/inspect?decrypt=1&token="+url.QueryEscape(wtTok), otherTenant, nil), 403,
		"not authorized to decrypt the secrets of this token", "decrypt by non-issuer")
	wantErr(t, env.Call("GET", "/api/webtask/a/iss?decrypt=1", otherTenant, nil), 403,
		"not authorized to decrypt the secrets of this webtask", "get decrypt by non-issuer")

	for _, b := range bodies {
		if bytes.Contains(b, []byte(marker)) || bytes.Contains(b, []byte(uni)) {
			t.Errorf("a response leaks a secret: %s", b)
		}
	}
	env.Stop() // flush everything to disk
	files := 0
	filepath.Walk(cfg.DataDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		files++
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(marker)) || bytes.Contains(b, []byte(uni)) {
			t.Errorf("%s holds a secret in plain text", p)
		}
		return nil
	})
	if files < 3 {
		t.Fatalf("only %d files in the data dir", files)
	}
	l := logs.Bytes()
	if !bytes.Contains(l, []byte("webtaskd ready")) {
		t.Fatalf("the daemon log was not captured: %q", l)
	}
	if bytes.Contains(l, []byte(marker)) || bytes.Contains(l, []byte(uni)) {
		t.Errorf("the daemon log holds a secret")
	}
}

// Acceptance 6: the wt-cli update flow (inspect with decrypt, re-issue)
// round-trips secrets exactly, unicode and 64 KiB values included.
func TestWtUpdateRoundTripsSecrets(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	tenant := issue(t, env, env.Master, map[string]any{"ten": "a", "dd": 1})
	big := strings.Repeat("€𝄞é", 64<<10/9+1)[:64<<10] // 64 KiB of multi-byte UTF-8 (cut on a rune boundary below)
	for !strings.HasSuffix(big, "é") && !strings.HasSuffix(big, "€") && !strings.HasSuffix(big, "𝄞") {
		big = big[:len(big)-1]
	}
	secrets := map[string]any{"UNI": "日本語 — ✓ \"quotes\" \\ \u0000 \u2028", "BIG": big, "EMPTY": ""}
	create := map[string]any{"ten": "a", "dd": 0, "dr": 1, "mb": 1, "pb": 1, "jtn": "upd", "code": echoSecretCode,
		"ectx": secrets, "pctx": map[string]any{"P": "p"}, "meta": map[string]string{"m": "1"}}
	issue(t, env, tenant, create)

	check := func(what string) {
		t.Helper()
		r := env.Call("GET", "/api/run/a/upd", "", nil)
		MustStatus(t, r, 200, what)
		var out struct {
			Uni    string   `json:"uni"`
			BigLen int      `json:"big_len"`
			BigSha string   `json:"big_sha"`
			Keys   []string `json:"keys"`
		}
		r.JSON(t, &out)
		sum := sha256.Sum256([]byte(big))
		if out.Uni != secrets["UNI"] || out.BigSha != hex.EncodeToString(sum[:]) || len(out.Keys) != 3 {
			t.Fatalf("%s: run sees %s", what, r.Body)
		}
	}
	check("after create")

	for round := 1; round <= 2; round++ {
		// wt update: GET the webtask, inspect its token with decrypt, re-issue.
		r := env.Call("GET", "/api/webtask/a/upd", tenant, nil)
		MustStatus(t, r, 200, "get")
		var w struct{ Token string }
		r.JSON(t, &w)
		r = env.Call("GET", "/api/tokens/inspect?token="+url.QueryEscape(w.Token)+"&decrypt=true&meta=true", tenant, nil)
		MustStatus(t, r, 200, "inspect")
		var claims map[string]any
		r.JSON(t, &claims)
		if !reflect.DeepEqual(claims["ectx"], secrets) {
			t.Fatalf("round %d: inspected ectx differs", round)
		}
		re := map[string]any{"ten": "a", "dd": 0, "dr": 1, "jtn": "upd", "code": echoSecretCode + "\n// round " + string(rune('0'+round))}
		for _, k := range []string{"ectx", "pctx", "meta", "mb", "pb"} {
			re[k] = claims[k]
		}
		issue(t, env, tenant, re)
		check("after update round " + string(rune('0'+round)))
	}
}

// Acceptance 7: a token with lts:5 gets 429 on its 6th call within a
// second and recovers afterwards.
func TestTokenRateLimitEndToEnd(t *testing.T) {
	RequireRoot(t)
	// A controlled clock: the six calls happen "within a second" by
	// construction, however slow the machine is, and recovery is a step
	// of the clock, not a wait.
	var mu sync.Mutex
	now := time.Now()
	cfg := Config(t)
	cfg.Clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	env := Start(t, cfg)
	env.PutWebtask("rl", "warm", `module.exports = cb => cb(null, 'warm')`, nil)
	issue(t, env, env.Master, map[string]any{"ten": "rl", "jtn": "limited", "code": `module.exports = cb => cb(null, 'ok')`, "lts": "5"})

	for i := 1; i <= 5; i++ {
		MustStatus(t, env.Call("GET", "/api/run/rl/limited", "", nil), 200, fmt.Sprintf("call %d", i))
	}
	last := env.Call("GET", "/api/run/rl/limited", "", nil)
	wantErr(t, last, 429, "rate limit exceeded: the token allows 5 requests per second (`lts`)", "6th call")
	if ra := last.Header.Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After = %q, want 1", ra)
	}
	// Other webtasks of the container are not limited by that token.
	MustStatus(t, env.Call("GET", "/api/run/rl/warm", "", nil), 200, "unlimited webtask")
	// A second later the token recovers.
	advance(time.Second)
	MustStatus(t, env.Call("GET", "/api/run/rl/limited", "", nil), 200, "after a second")
}
