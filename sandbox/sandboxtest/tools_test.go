package sandboxtest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB whose Fatal and Skip end the calling goroutine
// and record what was said.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()           {}
func (r *recorder) Fatal(args ...any) { r.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Skip(args ...any)  { r.skip = fmt.Sprint(args...); runtime.Goexit() }

// needTool runs NeedTool on a recorder in its own goroutine (Goexit).
func needTool(names ...string) (path string, r *recorder) {
	r = &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		path = NeedTool(r, names...)
	}()
	<-done
	return path, r
}

func TestNeedTool(t *testing.T) {
	if p, r := needTool("webtaskd-no-such-tool", "sh"); p == "" || r.fatal != "" || r.skip != "" {
		t.Errorf("NeedTool(missing, sh) = %q (fatal %q, skip %q), want sh's path", p, r.fatal, r.skip)
	}

	t.Setenv("CI", "true")
	if _, r := needTool("webtaskd-no-such-tool"); !strings.Contains(r.fatal, "webtaskd-no-such-tool not found") || r.skip != "" {
		t.Errorf("under CI=true a missing tool: fatal %q, skip %q; want it to fail", r.fatal, r.skip)
	}
	t.Setenv("CI", "")
	if _, r := needTool("webtaskd-no-such-tool"); !strings.HasPrefix(r.skip, "SKIP (LOUD): webtaskd-no-such-tool not found") || r.fatal != "" {
		t.Errorf("outside CI a missing tool: fatal %q, skip %q; want a loud skip", r.fatal, r.skip)
	}
}
