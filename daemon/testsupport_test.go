package daemon_test

import (
	"flag"
	"log/slog"
	"os"
	"testing"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("child", flag.ContinueOnError) }

func slogToStderr() *slog.Logger { return slog.New(slog.NewTextHandler(os.Stderr, nil)) }

// callJSON sends one request (as env.Call), requires 200 and decodes the
// JSON answer.
func callJSON[T any](t *testing.T, env *Env, method, path, tok string, body any, header ...string) T {
	t.Helper()
	r := env.Call(method, path, tok, body, header...)
	MustStatus(t, r, 200, method+" "+path)
	var v T
	r.JSON(t, &v)
	return v
}
