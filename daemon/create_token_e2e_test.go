package daemon_test

import (
	"net/url"
	"strings"
	"testing"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// minterCode mints a child of its own token: ?mode=url asks for the URL,
// ?mode=wide asks for another container, ?mode=echo only answers.
const minterCode = `module.exports = function (ctx, cb) {
  var mode = ctx.query.mode || 'token';
  if (mode === 'echo') return cb(null, { echo: ctx.secrets.S || null, jtn: ctx.meta && ctx.meta.m || null });
  var fn = mode === 'url' ? ctx.create_token_url : ctx.create_token;
  fn({ ten: mode === 'wide' ? 'ct,elsewhere' : 'ct', dd: 0 }, function (err, v) {
    if (err) return cb(null, { code: err.code, message: err.message });
    cb(null, { value: v });
  });
};`

type minted struct {
	Value   string `json:"value"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func mint(t *testing.T, env *Env, path, tok string) minted {
	t.Helper()
	return callJSON[minted](t, env, "GET", path, tok, nil)
}

// TestCreateTokenE2E: a named webtask whose token has dd:1 mints a child
// of it for its container (used here for the management API and as a run
// key); it cannot widen it; a dd:0 webtask gets the API's refusal.
func TestCreateTokenE2E(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	r := env.Call("POST", "/api/tokens/issue", env.Master, map[string]any{
		"ten": "ct", "jtn": "minter", "code": minterCode, "dd": 1, "ectx": map[string]string{"S": "kept"},
	})
	MustStatus(t, r, 200, "issue the minter")
	parent := string(r.Body)

	m := mint(t, env, "/api/run/ct/minter", "")
	if m.Value == "" || m.Code != 0 || strings.Count(m.Value, ".") != 2 {
		t.Fatalf("create_token = %+v", m)
	}
	child := m.Value
	// The child is the webtask token's child: ca names the parent, dd 0.
	r = env.Call("GET", "/api/tokens/inspect?token="+url.QueryEscape(child), env.Master, nil)
	MustStatus(t, r, 200, "inspect child")
	var cc, pc struct {
		Jti string   `json:"jti"`
		Ca  []string `json:"ca"`
		Dd  *int     `json:"dd"`
		Ten string   `json:"ten"`
	}
	r.JSON(t, &cc)
	r = env.Call("GET", "/api/tokens/inspect?token="+url.QueryEscape(parent), env.Master, nil)
	r.JSON(t, &pc)
	if cc.Ten != "ct" || cc.Dd == nil || *cc.Dd != 0 || len(cc.Ca) == 0 || cc.Ca[len(cc.Ca)-1] != pc.Jti {
		t.Fatalf("child claims %+v, parent jti %s", cc, pc.Jti)
	}
	// The child is bound to the minter, as its parent: it reads the
	// minter's storage and manages nothing (issue 11: least privilege).
	MustStatus(t, env.Call("GET", "/api/webtask/ct/minter/data", child, nil), 200, "the minter's storage with the child")
	MustStatus(t, env.Call("GET", "/api/webtask/ct", child, nil), 403, "list ct with the child")
	MustStatus(t, env.Call("GET", "/api/webtask/elsewhere", child, nil), 403, "list elsewhere with the child")
	// A leaf cannot issue.
	r = env.Call("POST", "/api/tokens/issue", child, map[string]any{"ten": "ct"})
	MustStatus(t, r, 400, "issue from the child")

	// create_token_url: the URL carries the child as key and runs the
	// webtask's code with its (inherited, re-sealed) secrets.
	m = mint(t, env, "/api/run/ct/minter?mode=url", "")
	u, err := url.Parse(m.Value)
	if err != nil || m.Code != 0 || u.Path != "/api/run/ct" || u.Query().Get("key") == "" || !strings.HasPrefix(m.Value, env.Base+"/") {
		t.Fatalf("create_token_url = %+v (%v)", m, err)
	}
	r = env.Call("GET", strings.TrimPrefix(m.Value, env.Base)+"&mode=echo", "", nil)
	MustStatus(t, r, 200, "run the minted URL")
	if !strings.Contains(string(r.Body), `"echo":"kept"`) {
		t.Fatalf("minted URL run = %s", r.Body)
	}

	// Never wider than its own token.
	m = mint(t, env, "/api/run/ct/minter?mode=wide", "")
	if m.Code != 403 || m.Value != "" || !strings.Contains(m.Message, "container `elsewhere` is not allowed") {
		t.Fatalf("wide create_token = %+v", m)
	}

	// A dd:0 webtask (what wt create makes) gets the reference's refusal.
	r = env.Call("POST", "/api/tokens/issue", env.Master, map[string]any{"ten": "ct", "jtn": "leaf", "code": minterCode, "dd": 0})
	MustStatus(t, r, 200, "issue the leaf")
	m = mint(t, env, "/api/run/ct/leaf", "")
	if m.Code != 400 || m.Message != "The authentication webtask token cannot be used to issue new webtask tokens." {
		t.Fatalf("dd:0 create_token = %+v", m)
	}

	// Revoking the webtask's token stops its runs, and so its minting.
	MustStatus(t, env.Call("POST", "/api/tokens/revoke?token="+url.QueryEscape(parent), env.Master, nil), 200, "revoke")
	MustStatus(t, env.Call("GET", "/api/run/ct/minter", "", nil), 403, "run after revoke")
	wantErr(t, env.Call("GET", "/api/webtask/ct/minter/data", child, nil), 403, "token is revoked", "child after the parent's revocation")
}

// TestCreateTokenUnnamedE2E: an unnamed run issues from the caller's token
// (here a code token with dd:1).
func TestCreateTokenUnnamedE2E(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	r := env.Call("POST", "/api/tokens/issue", env.Master, map[string]any{"ten": "ct", "code": minterCode, "dd": 1})
	MustStatus(t, r, 200, "issue the code token")
	m := mint(t, env, "/api/run/ct", string(r.Body))
	if m.Code != 0 || m.Value == "" {
		t.Fatalf("unnamed create_token = %+v", m)
	}
	// The child is bound to the code, as its parent: it manages nothing.
	MustStatus(t, env.Call("GET", "/api/webtask/ct", m.Value, nil), 403, "list with the child")
	// Its child runs the same stored code (url inherited).
	r = env.Call("GET", "/api/run/ct?mode=echo&key="+url.QueryEscape(m.Value), "", nil)
	MustStatus(t, r, 200, "run with the child")
}
