package clientstest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
	"github.com/webtaskd/webtaskd/store/modules/modulestest"
)

// TestWtModules drives the real wt-cli against provisioned modules, with no
// registry at all (the daemon installs from a directory of tarballs):
// `wt modules versions` lists the versions and their states, and two
// webtasks declaring them (created through the API: wt create resolves a
// wt-node-dependencies meta on unpkg.com) each get their own version of one
// package.
func TestWtModules(t *testing.T) {
	t.Parallel()
	RequireRoot(t)
	nm := nodeModules(t)
	tarballs := t.TempDir()
	for _, v := range []string{"1.0.0", "2.0.0"} {
		p := modulestest.Package{Name: "wtd-greet", Version: v, Files: map[string]string{"index.js": `module.exports = "greet ` + v + `";`}}
		if err := os.WriteFile(filepath.Join(tarballs, p.TarballName()), p.Tarball(t), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 0
	cfg.Modules.TarballDir = tarballs
	env := Start(t, cfg)
	const c = "mods"
	wt := newWT(t, nm)
	wt.must("init", "--url", env.Base, "--token", tenantToken(t, env, c), "--container", c)

	req := types.ModulesRequest{Modules: []types.ModuleSpec{{Name: "wtd-greet", Version: "1.0.0"}, {Name: "wtd-greet", Version: "2.0.0"}}}
	MustStatus(t, env.Call("POST", "/api/env/node/modules", env.Master, req), 200, "POST modules")
	WaitFor(t, "both versions available", 2*time.Minute, func() bool {
		out, _ := wt.run("modules", "versions", "wtd-greet")
		return strings.Contains(out, "1.0.0: available") && strings.Contains(out, "2.0.0: available")
	})

	code := `const g = require("wtd-greet"); module.exports = cb => cb(null, g);`
	for _, v := range []string{"1.0.0", "2.0.0"} {
		name := "g" + v[:1]
		MustStatus(t, env.Call("PUT", "/api/webtask/"+c+"/"+name, env.Master, map[string]any{
			"code": code, "meta": map[string]string{"wt-node-dependencies": `{"wtd-greet":"` + v + `"}`}}), 200, "PUT "+name)
		r := env.Call("GET", "/api/run/"+c+"/"+name, "", nil)
		if r.Status != 200 || string(r.Body) != `"greet `+v+`"` {
			t.Fatalf("%s: %d %s, want greet %s", name, r.Status, r.Body, v)
		}
	}

	// What `wt cron create` without --no-auth makes, passed by hand
	// (without --no-auth wt-cli looks the middleware up on unpkg.com).
	wt.write("tick.js", `module.exports = cb => cb(null, "tick");`)
	wt.must("cron", "create", "--no-auth", "--schedule", "*/30 * * * *", "--name", "tick", "tick.js", "--ignore-package-json",
		"--meta", "wt-compiler=@webtask/middleware-compiler", "--meta", "wt-middleware=@webtask/cron-auth-middleware")
	if r := env.Call("GET", "/api/run/"+c+"/tick", "", nil, "Authorization", "Bearer not-the-token"); r.Status != 401 {
		t.Fatalf("tick with a wrong bearer: %d %s, want 401", r.Status, r.Body)
	}
	if err := env.D.RunCronNow(c, "tick"); err != nil {
		t.Fatal(err)
	}
	if out := wt.must("cron", "history", "tick"); !strings.Contains(out, "success") {
		t.Fatalf("cron history after a run:\n%s", out)
	}
}
