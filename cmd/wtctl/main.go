// Command wtctl is the admin CLI of webtaskd. It talks to the daemon's HTTP
// API with the master token.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	m := NewMain(os.Stdout, os.Stderr)
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "wtctl:", err)
		os.Exit(1)
	}
}

// Main runs one wtctl command line. Tests drive it directly.
type Main struct {
	Stdout, Stderr io.Writer
}

// NewMain returns a Main writing to the given streams.
func NewMain(stdout, stderr io.Writer) *Main { return &Main{Stdout: stdout, Stderr: stderr} }

// Run parses args and executes the command.
func (m *Main) Run(ctx context.Context, args []string) error {
	root := newRootCmd(m)
	root.SetArgs(args)
	root.SetOut(m.Stdout)
	root.SetErr(m.Stderr)
	return root.ExecuteContext(ctx)
}
