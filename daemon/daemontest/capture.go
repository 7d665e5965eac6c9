package daemontest

import (
	"bytes"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/webtaskd/webtaskd/daemon"
)

// LogBuffer collects output (safe for a writer and a concurrent poller):
// a daemon's log, so tests can search it for leaked secrets, or a CLI's.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Bytes returns a copy of everything logged so far.
func (b *LogBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartLogged is Start with the daemon's log (debug level and up) also
// written to logs. Call it again with the same cfg after Stop to restart
// the daemon on the same data.
func StartLogged(t testing.TB, cfg daemon.Config, logs *LogBuffer) *Env {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(Writer{T: t}, logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	return open(t, cfg, log)
}
