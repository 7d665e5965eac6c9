// Command webtaskd is the webtask daemon: `webtaskd serve` runs the HTTP API
// and the sandbox fleet until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/webtaskd/webtaskd/daemon"
)

func main() {
	reexecSandboxInit() // never returns when this process is a sandbox's init

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	m := NewMain(os.Stderr)
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "webtaskd:", err)
		os.Exit(2)
	}
	if err := m.Run(ctx); err != nil {
		m.Logger.Error("start failed", "err", err)
		os.Exit(1)
	}
	select {
	case <-ctx.Done():
		m.Logger.Info("shutting down", "cause", "signal")
	case err := <-m.Daemon.Err():
		m.Logger.Error("server failed", "err", err)
	}
	stop() // a second signal now kills the process the default way
	if err := m.Close(); err != nil {
		m.Logger.Error("shutdown", "err", err)
		os.Exit(1)
	}
	m.Logger.Info("webtaskd stopped")
}

// Main is the program: parse flags, run, close. Tests drive it directly.
type Main struct {
	Config daemon.Config
	Logger *slog.Logger
	Daemon *daemon.Daemon

	stderr io.Writer
}

// NewMain returns a Main with the embedded defaults that logs to stderr.
func NewMain(stderr io.Writer) *Main {
	return &Main{Config: daemon.DefaultConfig(), stderr: stderr}
}

// ParseFlags reads `serve [flags]` (serve may be omitted) and validates the
// configuration.
func (m *Main) ParseFlags(args []string) error {
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	} else if len(args) > 0 && (args[0] == "version" || args[0] == "--version") {
		fmt.Fprintln(m.stderr, "webtaskd", version)
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet("webtaskd serve", flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	m.Config.RegisterFlags(fs)
	if err := m.Config.ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (usage: webtaskd serve [flags])", fs.Args())
	}
	if err := m.Config.Validate(); err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(m.Config.LogLevel))
	m.Logger = slog.New(slog.NewTextHandler(m.stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(m.Logger) // libraries that log through slog's default share the format
	return nil
}

// Run starts the daemon; it returns once the API is serving.
func (m *Main) Run(ctx context.Context) error {
	m.Daemon = daemon.New(m.Config, m.Logger)
	return m.Daemon.Open(ctx)
}

// Close stops the daemon within Config.ShutdownTimeout; past it the process
// gives up waiting and reports an error.
func (m *Main) Close() error {
	if m.Daemon == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Daemon.Close(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(m.Config.ShutdownTimeout + time.Second):
		return fmt.Errorf("shutdown did not finish within %s", m.Config.ShutdownTimeout)
	}
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"
