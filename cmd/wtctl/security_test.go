package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

func TestTokenCreateInspectRevoke(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	out, err := wtctl(t, env, "token", "create", "--container", "a", "--ttl", "1h", "--limit", "lm=100,lts=10")
	if err != nil {
		t.Fatal(err)
	}
	tenant := strings.TrimSpace(out)
	if strings.Count(tenant, ".") != 2 {
		t.Fatalf("token create printed %q", out)
	}
	MustStatus(t, env.Call("GET", "/api/webtask/a", tenant, nil), 200, "tenant lists a")
	MustStatus(t, env.Call("GET", "/api/webtask/b", tenant, nil), 403, "tenant lists b")
	r := env.Call("PUT", "/api/webtask/a/s", tenant, map[string]any{"code": "module.exports = cb => cb(null, 1)", "secrets": map[string]string{"K": "ключ"}})
	MustStatus(t, r, 200, "tenant creates a webtask")
	var w struct{ Token string }
	r.JSON(t, &w)

	out, err = wtctl(t, env, "token", "inspect", tenant)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal([]byte(out), &claims); err != nil {
		t.Fatalf("inspect output: %v\n%s", err, out)
	}
	exp, _ := claims["exp"].(float64)
	if claims["ten"] != "a" || claims["dd"] != 1.0 || claims["lm"] != 100.0 || claims["lts"] != 10.0 ||
		int64(exp) < time.Now().Add(59*time.Minute).Unix() || len(claims["jti"].(string)) != 32 {
		t.Fatalf("claims = %v", claims)
	}
	out, err = wtctl(t, env, "token", "inspect", "--decrypt", "--fetch-code", w.Token)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "ключ") || !strings.Contains(out, "module.exports") {
		t.Fatalf("inspect --decrypt:\n%s", out)
	}
	if _, err := wtctl(t, env, "token", "create"); err == nil || !strings.Contains(err.Error(), "--container is required") {
		t.Fatalf("create without container: %v", err)
	}
	if _, err := wtctl(t, env, "token", "create", "--container", "a", "--limit", "lx=1"); err == nil || !strings.Contains(err.Error(), "unsupported claim `lx`") {
		t.Fatalf("bad limit: %v", err)
	}

	out, err = wtctl(t, env, "token", "revoke", tenant)
	if err != nil || !strings.HasPrefix(out, "revoked ") {
		t.Fatalf("revoke: %q %v", out, err)
	}
	r = env.Call("GET", "/api/webtask/a", tenant, nil)
	MustStatus(t, r, 403, "revoked tenant")
	if !strings.Contains(string(r.Body), "token is revoked") {
		t.Fatalf("revoked tenant: %s", r.Body)
	}
	// The webtask the tenant created descends from it: revoked too.
	MustStatus(t, env.Call("GET", "/api/run/a/s", "", nil), 403, "run of a webtask of a revoked tenant")
}

func TestKeysLsRotateRetire(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	env.PutWebtask("a", "s", "module.exports = (ctx, cb) => cb(null, ctx.secrets.K)", map[string]string{"K": "kept"})
	out, err := wtctl(t, env, "keys", "ls", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var keys []types.KeyInfo
	if err := json.Unmarshal([]byte(out), &keys); err != nil || len(keys) != 1 || !keys[0].Current {
		t.Fatalf("keys ls: %v %s", err, out)
	}
	old := keys[0].ID
	if out, err = wtctl(t, env, "keys", "rotate"); err != nil || !strings.HasPrefix(out, "current key set: ") {
		t.Fatalf("rotate: %q %v", out, err)
	}
	if _, err := wtctl(t, env, "keys", "retire", strings.TrimSpace(strings.TrimPrefix(out, "current key set: "))); err == nil ||
		!strings.Contains(err.Error(), "rotate first") {
		t.Fatalf("retiring the current key: %v", err)
	}
	out, err = wtctl(t, env, "keys", "retire", old)
	if err != nil || !strings.Contains(out, "1 webtasks re-sealed, 1 stored tokens re-signed") {
		t.Fatalf("retire: %q %v", out, err)
	}
	// wtctl reads the re-minted master token from the data dir.
	out, err = wtctl(t, env, "keys", "ls")
	if err != nil || !strings.Contains(out, old) || !strings.Contains(out, "retired") || !strings.Contains(out, "current") {
		t.Fatalf("keys ls after retire: %q %v", out, err)
	}
	r := env.Call("GET", "/api/run/a/s", "", nil)
	MustStatus(t, r, 200, "run after retire")
	if strings.TrimSpace(string(r.Body)) != `"kept"` {
		t.Fatalf("run after retire: %s", r.Body)
	}
}
