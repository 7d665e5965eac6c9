package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoSandboxCode: wtctl is a client of the HTTP API; it must not
// link runc/libcontainer or seccomp (it would not build for macOS, and
// would drag the daemon into the CLI). .ci/run checks the same.
func TestLinksNoSandboxCode(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("SKIPPED: no go tool on PATH to list wtctl's dependencies")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !strings.Contains(string(out), "github.com/spf13/cobra") {
		t.Fatalf("go list -deps gave an implausible list: %q", deps)
	}
	for _, d := range deps {
		for _, bad := range []string{"runc", "libcontainer", "seccomp"} {
			if strings.Contains(d, bad) {
				t.Errorf("wtctl depends on %s", d)
			}
		}
	}
}
