package modulestest

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RequireNpmRegistry skips t loudly unless the registry of the host's npm
// configuration (`npm config get registry`) answers 200 for pkg's
// packument within 10s; it returns that registry's URL.
func RequireNpmRegistry(t testing.TB, pkg string) string {
	t.Helper()
	out, err := exec.Command("npm", "config", "get", "registry").Output()
	reg := strings.TrimSpace(string(out))
	if err != nil || reg == "" {
		t.Skip("SKIPPED LOUDLY: cannot read npm's registry setting")
	}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(strings.TrimRight(reg, "/") + "/" + pkg)
	if err != nil {
		t.Skipf("SKIPPED LOUDLY: the npm registry %s is unreachable: %v", reg, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Skipf("SKIPPED LOUDLY: the npm registry %s answered %d for %s", reg, resp.StatusCode, pkg)
	}
	return reg
}
