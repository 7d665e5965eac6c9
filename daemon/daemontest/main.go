package daemontest

import (
	"fmt"
	"os"
	"testing"

	"github.com/webtaskd/webtaskd/sandbox"
)

// Child is a role the test binary plays when re-executed by a test: when
// the environment variable Env is "1", RunTests runs Run instead of the tests
// and exits with its code.
type Child struct {
	Env string
	Run func() int
}

// RunTests is the TestMain of packages whose tests start real sandboxes or
// daemons: it hands the process to libcontainer when it was re-executed as
// a sandbox init, runs a Child role when asked to, warns loudly that the
// end-to-end tests (what) will be skipped when not root, and runs the
// tests.
func RunTests(m *testing.M, what string, children ...Child) {
	sandbox.ReexecInit()
	for _, c := range children {
		if os.Getenv(c.Env) == "1" {
			os.Exit(c.Run())
		}
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(os.Stderr, "WARNING: not root: %s end-to-end tests will be SKIPPED\n", what)
	}
	os.Exit(m.Run())
}
