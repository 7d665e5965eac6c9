package daemon_test

import (
	"strings"
	"testing"

	"github.com/webtaskd/webtaskd/daemon"
)

// TestEditorFrameAncestorsFlag: the flag and its environment variable
// reach the config as a list; a value that is no CSP source is refused.
func TestEditorFrameAncestorsFlag(t *testing.T) {
	parse := func(args ...string) (daemon.Config, error) { return parseFlags(t, args...) }
	cfg, err := parse("--editor-frame-ancestors", "https://app.example, 'self'")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.API.EditorFrameAncestors, "|"); got != "https://app.example|'self'" {
		t.Errorf("list %q", got)
	}
	if cfg, err := parse(); err != nil || len(cfg.API.EditorFrameAncestors) != 0 {
		t.Errorf("default: %v, %q", err, cfg.API.EditorFrameAncestors)
	}
	if _, err := parse("--editor-frame-ancestors", "https://a.example;script-src"); err == nil || !strings.Contains(err.Error(), "editor frame ancestor") {
		t.Errorf("a CSP injection was accepted: %v", err)
	}
	t.Setenv("WEBTASKD_EDITOR_FRAME_ANCESTORS", "https://env.example")
	if cfg, err := parse(); err != nil || strings.Join(cfg.API.EditorFrameAncestors, "|") != "https://env.example" {
		t.Errorf("from the environment: %v, %q", err, cfg.API.EditorFrameAncestors)
	}
}
