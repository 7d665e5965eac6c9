package sandboxtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Unavailable ends t for lack of something make deps installs (a program,
// a service): it fails the test under CI=true, where everything must run,
// and skips it loudly elsewhere.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why + " (CI=true: failing, not skipping)")
	}
	t.Skip("SKIP (LOUD): " + why)
}

// NeedTool returns the path of the first of names found on PATH, or in
// /usr/sbin and /sbin (root's tools, which a test's PATH may lack); when
// none is, it ends t with Unavailable.
func NeedTool(t testing.TB, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if p := filepath.Join(dir, name); Executable(p) {
				return p
			}
		}
	}
	Unavailable(t, strings.Join(names, " or ")+" not found: install it (scripts/install-deps.sh, make deps)")
	return ""
}

// Executable reports whether p is a regular file with an execute bit.
func Executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
