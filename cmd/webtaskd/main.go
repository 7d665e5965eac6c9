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

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/webtaskd/webtaskd/daemon"
)

func main() {
	reexecSandboxInit() // never returns when this process is a sandbox's init

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if len(os.Args) > 1 && os.Args[1] == "restore" {
		if err := restore(ctx, os.Stdout, os.Stderr, os.Args[2:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				os.Exit(0)
			}
			fmt.Fprintln(os.Stderr, "webtaskd:", err)
			os.Exit(1)
		}
		return
	}
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
	// SIGHUP reloads the TLS certificate and key (systemctl reload).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
wait:
	for {
		select {
		case <-hup:
			if err := m.Daemon.ReloadTLS(); err != nil {
				m.Logger.Error("TLS reload failed; serving the previous certificate", "err", err)
			}
		case <-ctx.Done():
			m.Logger.Info("shutting down", "cause", "signal")
			break wait
		case err := <-m.Daemon.Err():
			m.Logger.Error("server failed", "err", err)
			break wait
		}
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

	stdout, stderr io.Writer
}

// NewMain returns a Main with the embedded defaults that logs to stderr.
func NewMain(stderr io.Writer) *Main {
	return &Main{Config: daemon.DefaultConfig(), stdout: os.Stdout, stderr: stderr}
}

// ParseFlags reads `serve [flags]` (serve may be omitted) and validates the
// configuration.
func (m *Main) ParseFlags(args []string) error {
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	} else if len(args) > 0 && (args[0] == "version" || args[0] == "--version") {
		printVersion(m.stdout)
		return flag.ErrHelp
	} else if len(args) > 0 && args[0] == "config-defaults" {
		if err := printConfigDefaults(m.stdout, args[1:]); err != nil {
			return err
		}
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
	m.Logger = m.Config.NewLogger(m.stderr)
	slog.SetDefault(m.Logger) // libraries that log through slog's default share the format
	return nil
}

// Run starts the daemon; it returns once the API is serving, after telling
// systemd so (READY=1, when NOTIFY_SOCKET is set: /healthz answers 200 from
// then on).
func (m *Main) Run(ctx context.Context) error {
	m.Daemon = daemon.New(m.Config, m.Logger)
	if err := m.Daemon.Open(ctx); err != nil {
		return err
	}
	m.notify(sddaemon.SdNotifyReady + "\nSTATUS=serving on " + m.Daemon.Addr())
	return nil
}

// notify sends state to systemd's notification socket (nothing when
// NOTIFY_SOCKET is unset); a failure is logged, never fatal.
func (m *Main) notify(state string) {
	if _, err := sddaemon.SdNotify(false, state); err != nil {
		m.Logger.Warn("sd_notify failed", "err", err)
	}
}

// Close stops the daemon within Config.ShutdownTimeout; past it the process
// gives up waiting and reports an error. systemd is told first (STOPPING=1).
func (m *Main) Close() error {
	if m.Daemon == nil {
		return nil
	}
	m.notify(sddaemon.SdNotifyStopping)
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
