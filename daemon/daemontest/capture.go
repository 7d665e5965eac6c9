package daemontest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/daemon"
)

// LogBuffer collects a daemon's log output (safe for concurrent use), so
// tests can search it, for example for leaked secrets.
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

// StartLogged is Start with the daemon's log (debug level and up) also
// written to logs. Call it again with the same cfg after Stop to restart
// the daemon on the same data.
func StartLogged(t *testing.T, cfg daemon.Config, logs *LogBuffer) *Env {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(Writer{T: t}, logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := daemon.New(cfg, log)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Open(ctx); err != nil {
		t.Fatalf("open daemon: %v", err)
	}
	env := &Env{t: t, Cfg: cfg, D: d, Base: "http://" + d.Addr(), Master: d.MasterToken()}
	t.Cleanup(func() { env.Stop() })
	return env
}
