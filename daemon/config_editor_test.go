package daemon_test

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/webtaskd/webtaskd/daemon"
)

// TestEditorFrameAncestorsFlag: the flag and its environment variable
// reach the config as a list; a value that is no CSP source is refused.
func TestEditorFrameAncestorsFlag(t *testing.T) {
	parse := func(args ...string) (daemon.Config, error) {
		cfg := daemon.DefaultConfig()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg.RegisterFlags(fs)
		if err := fs.Parse(args); err != nil {
			return cfg, err
		}
		cfg.DataDir, cfg.StateDir = t.TempDir(), "/run/webtaskd-flagtest"
		return cfg, cfg.Validate()
	}
	cfg, err := parse("--editor-frame-ancestors", "https://app.example, 'self'")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.EditorFrameAncestorList(), "|"); got != "https://app.example|'self'" {
		t.Errorf("list %q", got)
	}
	if cfg, err := parse(); err != nil || len(cfg.EditorFrameAncestorList()) != 0 {
		t.Errorf("default: %v, %q", err, cfg.EditorFrameAncestorList())
	}
	if _, err := parse("--editor-frame-ancestors", "https://a.example;script-src"); err == nil || !strings.Contains(err.Error(), "--editor-frame-ancestors") {
		t.Errorf("a CSP injection was accepted: %v", err)
	}
	t.Setenv("WEBTASKD_EDITOR_FRAME_ANCESTORS", "https://env.example")
	if cfg, err := parse(); err != nil || strings.Join(cfg.EditorFrameAncestorList(), "|") != "https://env.example" {
		t.Errorf("from the environment: %v, %q", err, cfg.EditorFrameAncestorList())
	}
}
