package daemon_test

import (
	"flag"
	"log/slog"
	"os"
)

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("child", flag.ContinueOnError) }

func slogToStderr() *slog.Logger { return slog.New(slog.NewTextHandler(os.Stderr, nil)) }
