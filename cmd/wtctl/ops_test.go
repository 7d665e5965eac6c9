package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/webtaskd/webtaskd/api/types"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
	"github.com/webtaskd/webtaskd/store/token"
)

// TestQuotaAndAudit: a webtask past the container's quota is a 403 that
// stores nothing, and wtctl limits overrides the quota per container; wtctl audit shows the create, the revocation and the
// delete with the token ids that made them, and no token.
func TestQuotaAndAudit(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 0
	cfg.Quotas.MaxWebtasks = 1
	env := Start(t, cfg)
	master, _, err := token.ParseUnverified(env.Master)
	if err != nil || master.Jti == "" {
		t.Fatalf("master token: %v", err)
	}

	env.PutWebtask("au", "one", "module.exports = cb => cb(null, 1)", nil)
	r := env.Call("PUT", "/api/webtask/au/two", env.Master, map[string]any{"code": "module.exports = cb => cb(null, 2)"})
	if r.Status != 403 || !strings.Contains(string(r.Body), "quota exceeded") {
		t.Fatalf("a webtask past the quota: %d %s", r.Status, r.Body)
	}
	MustStatus(t, env.Call("GET", "/api/webtask/au/two", env.Master, nil), 404, "GET the refused webtask")

	// wtctl limits raises the container's quota; others keep the daemon's.
	if out, err := wtctl(t, env, "limits", "set", "au", "--max-webtasks", "2"); err != nil || !strings.Contains(out, "2") {
		t.Fatalf("wtctl limits set --max-webtasks: %v\n%s", err, out)
	}
	env.PutWebtask("au", "two", "module.exports = cb => cb(null, 2)", nil)
	MustStatus(t, env.Call("PUT", "/api/webtask/au/three", env.Master, map[string]any{"code": "module.exports = cb => cb()"}), 403, "past the override")
	MustStatus(t, env.Call("PUT", "/api/admin/containers/au/limits", env.Master, map[string]any{"quotas": map[string]int{"max_webtasks": -1}}), 400, "a negative quota")

	// A tenant token, revoked by the master.
	r = env.Call("POST", "/api/tokens/issue", env.Master, map[string]any{"ten": "au"})
	MustStatus(t, r, 200, "issue")
	tenant := strings.TrimSpace(string(r.Body))
	tc, _, err := token.ParseUnverified(tenant)
	if err != nil {
		t.Fatal(err)
	}
	MustStatus(t, env.Call("POST", "/api/tokens/revoke?token="+tenant, env.Master, nil), 200, "revoke")
	MustStatus(t, env.Call("DELETE", "/api/webtask/au/one", env.Master, nil), 204, "delete")

	out, err := wtctl(t, env, "audit", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var entries []types.AuditEntry
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("wtctl audit --json: %v\n%s", err, out)
	}
	want := []types.AuditEntry{
		{TokenID: master.Jti, Action: "PUT /api/webtask/:container/:name", Target: "/api/webtask/au/one", Status: 200},
		{TokenID: master.Jti, Action: "PUT /api/webtask/:container/:name", Target: "/api/webtask/au/two", Status: 403},
		{TokenID: master.Jti, Action: "POST /api/tokens/revoke", Target: "jti " + tc.Jti, Status: 200},
		{TokenID: master.Jti, Action: "DELETE /api/webtask/:container/:name", Target: "/api/webtask/au/one", Status: 204},
	}
	for _, w := range want {
		found := false
		for _, e := range entries {
			if e.TokenID == w.TokenID && e.Action == w.Action && e.Target == w.Target && e.Status == w.Status && !e.At.IsZero() {
				found = true
			}
		}
		if !found {
			t.Errorf("audit log lacks %+v:\n%s", w, out)
		}
	}
	if strings.Contains(out, env.Master) || strings.Contains(out, tenant) {
		t.Error("a token reached the audit log")
	}
	text, err := wtctl(t, env, "audit")
	if err != nil || !strings.Contains(text, master.Jti) {
		t.Errorf("wtctl audit: %v\n%s", err, text)
	}
}
