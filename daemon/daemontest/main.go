package daemontest

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/webtaskd/webtaskd/daemon"
	"github.com/webtaskd/webtaskd/sandbox"
)

// EnvConfig is the validated configuration of a child daemon: the defaults
// and the WEBTASKD_* environment (as webtaskd serve reads it, no flags).
func EnvConfig() (daemon.Config, error) {
	cfg := daemon.DefaultConfig()
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := cfg.ParseFlags(fs, nil); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

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
