package daemon_test

import (
	"net/url"
	"strings"
	"testing"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// TestUnnamedCodeTokenE2E: POST /api/tokens/issue with inline code and no
// jtn stores the code, the token's url names it, and the token runs it
// through ?key= (the Location) and Bearer, with its sealed secrets, only
// in its own container.
func TestUnnamedCodeTokenE2E(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	tenant := env.Call("POST", "/api/tokens/issue", env.Master, map[string]any{"ten": "ca", "dd": 1})
	MustStatus(t, tenant, 200, "issue tenant token")
	code := `module.exports = function (ctx, cb) { cb(null, { who: ctx.secrets.WHO, q: ctx.query.q || null, has_token: !!ctx.token }); };`
	r := env.Call("POST", "/api/tokens/issue", string(tenant.Body), map[string]any{
		"ten": "ca", "code": code, "ectx": map[string]string{"WHO": "sealed-world"}, "dd": 0,
	})
	MustStatus(t, r, 200, "issue unnamed code token")
	raw := string(r.Body)
	loc := r.Header.Get("Location")
	want := env.Base + "/api/run/ca?key=" + url.QueryEscape(raw)
	if loc != want {
		t.Fatalf("Location = %q, want %q", loc, want)
	}
	if strings.Contains(raw, "sealed-world") {
		t.Fatal("the secret is readable in the token")
	}

	type out struct {
		Who      string  `json:"who"`
		Q        *string `json:"q"`
		HasToken bool    `json:"has_token"`
	}
	var o out
	r = env.Call("GET", strings.TrimPrefix(loc, env.Base)+"&q=1", "", nil)
	MustStatus(t, r, 200, "run with ?key=")
	r.JSON(t, &o)
	if o.Who != "sealed-world" || o.Q == nil || *o.Q != "1" || !o.HasToken {
		t.Fatalf("?key= run = %s", r.Body)
	}
	// Bearer; a POST body is request data, not code (the token fixes it).
	r = env.Call("POST", "/api/run/ca", raw, map[string]string{"not": "code"})
	MustStatus(t, r, 200, "run with Bearer")
	o = out{}
	r.JSON(t, &o)
	if o.Who != "sealed-world" {
		t.Fatalf("Bearer run = %s", r.Body)
	}
	// The token is for ca only.
	r = env.Call("GET", "/api/run/cb?key="+url.QueryEscape(raw), "", nil)
	MustStatus(t, r, 403, "run in another container")
	r = env.Call("GET", "/api/run/cb", raw, nil)
	MustStatus(t, r, 403, "run in another container with Bearer")
	// fetch_code shows the stored code.
	r = env.Call("GET", "/api/tokens/inspect?fetch_code=true&token="+url.QueryEscape(raw), env.Master, nil)
	MustStatus(t, r, 200, "inspect")
	var ins map[string]any
	r.JSON(t, &ins)
	if ins["code"] != code || !strings.HasPrefix(ins["url"].(string), "webtask:///code/") {
		t.Fatalf("inspect = %v", ins)
	}
	// The code survives a restart (stored, not cached only).
	env.Stop()
	cfg := env.Cfg
	env2 := Start(t, cfg)
	r = env2.Call("GET", "/api/run/ca?key="+url.QueryEscape(raw), "", nil)
	MustStatus(t, r, 200, "run after restart")
	o = out{}
	r.JSON(t, &o)
	if o.Who != "sealed-world" {
		t.Fatalf("run after restart = %s", r.Body)
	}
}
