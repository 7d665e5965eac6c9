package clientstest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// TestSandboxJS runs sandboxjs-flow.js (sandboxjs 5.0.0): create / run /
// list / getStorage / updateStorage with an etag conflict / update() with no
// options (keeps code, secrets, meta) / remove / unnamed code / empty code.
func TestSandboxJS(t *testing.T) {
	t.Parallel()
	RequireRoot(t)
	nodeModules(t)
	env, _ := startDaemon(t, "")
	const c = "sdk"
	tenant := tenantToken(t, env, c)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "sandboxjs-flow.js")
	cmd.Env = append(os.Environ(), "WT_URL="+env.Base, "WT_TOKEN="+tenant, "WT_CONTAINER="+c, "HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("stdout: %s\nstderr: %s", stdout.Bytes(), stderr.Bytes())
	if err != nil {
		t.Fatalf("sandboxjs flow failed: %v", err)
	}
	var res struct {
		OK    bool     `json:"ok"`
		Steps []string `json:"steps"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil || !res.OK {
		t.Fatalf("sandboxjs flow printed %q (%v)", stdout.Bytes(), err)
	}
	want := []string{"create", "run", "list", "getStorage", "updateStorage", "updateStorage-conflict", "run-sees-storage", "update-keeps-code", "remove", "run-unnamed-code", "create-empty-code"}
	if len(res.Steps) != len(want) {
		t.Fatalf("steps %v, want %v", res.Steps, want)
	}
}
