package main

import (
	"strings"
	"testing"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
	"github.com/webtaskd/webtaskd/store/modules/modulestest"
)

func TestParseModuleSpecs(t *testing.T) {
	got, err := parseModuleSpecs([]string{"lodash@4.17.21", "@webtask/cron-auth-middleware@1.2.0"})
	if err != nil || got[0].Name != "lodash" || got[0].Version != "4.17.21" || got[1].Name != "@webtask/cron-auth-middleware" || got[1].Version != "1.2.0" {
		t.Fatalf("parse = %+v, %v", got, err)
	}
	for _, bad := range []string{"lodash", "@scope/x", "lodash@", "@x"} {
		if _, err := parseModuleSpecs([]string{bad}); err == nil {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
}

// TestModulesAddLsRm drives `wtctl modules` against a daemon whose npm
// installs from a registry mirror on loopback.
func TestModulesAddLsRm(t *testing.T) {
	RequireRoot(t)
	reg := modulestest.NewRegistry(t, modulestest.Package{Name: "@wtd/tiny", Version: "1.0.0", Files: map[string]string{"index.js": "module.exports = 1;"}})
	t.Setenv("npm_config_registry", reg.URL())
	env := Start(t, Config(t))
	out, err := wtctl(t, env, "modules", "add", "--wait", "@wtd/tiny@1.0.0")
	if err != nil || !strings.Contains(out, "@wtd/tiny") || !strings.Contains(out, "available") {
		t.Fatalf("modules add --wait: %v\n%s", err, out)
	}
	out, err = wtctl(t, env, "modules", "add", "--wait", "wtd-absent@1.0.0")
	if err == nil || !strings.Contains(out, "failed") || !strings.Contains(out, "404") {
		t.Fatalf("modules add of an absent package: %v\n%s", err, out)
	}
	out, err = wtctl(t, env, "modules", "ls")
	if err != nil || !strings.Contains(out, "available") || !strings.Contains(out, "npm: ") {
		t.Fatalf("modules ls: %v\n%s", err, out)
	}
	out, err = wtctl(t, env, "modules", "ls", "--json", "@wtd/tiny")
	if err != nil || !strings.Contains(out, `"state": "available"`) {
		t.Fatalf("modules ls NAME: %v\n%s", err, out)
	}
	if out, err = wtctl(t, env, "modules", "rm", "@wtd/tiny@1.0.0"); err != nil {
		t.Fatalf("modules rm: %v\n%s", err, out)
	}
	out, _ = wtctl(t, env, "modules", "ls", "@wtd/tiny")
	if strings.Contains(out, "1.0.0") {
		t.Fatalf("removed module still listed:\n%s", out)
	}
}
