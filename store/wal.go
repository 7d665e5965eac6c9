package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/mattn/go-sqlite3"
)

// Bounds of the WAL. SQLite checkpoints after a commit that leaves the WAL
// over walAutocheckpointPages, and truncates the WAL file to at most
// journalSizeLimitBytes when a checkpoint resets it (without a limit the
// file keeps its largest size forever). The checkpointer also runs a
// TRUNCATE checkpoint when the WAL is over walTruncateBytes on its timer,
// and after a write failed for lack of space.
const (
	walAutocheckpointPages = 64      // 256 KiB of 4 KiB pages (SQLite's default is 1000: 4 MiB)
	journalSizeLimitBytes  = 1 << 20 // 1 MiB
	walTruncateBytes       = 1 << 20
	defaultCheckpointEvery = time.Minute
	checkpointTimeout      = 10 * time.Second
)

// driverName is mattn/go-sqlite3 with the per-connection WAL bounds set on
// every new connection of the pool.
const driverName = "sqlite3_webtaskd"

func init() {
	sql.Register(driverName, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		_, err := c.Exec(fmt.Sprintf("PRAGMA journal_size_limit = %d; PRAGMA wal_autocheckpoint = %d",
			journalSizeLimitBytes, walAutocheckpointPages), nil)
		return err
	}})
}

// checkpointer runs TRUNCATE checkpoints on its timer (when the WAL is over
// walTruncateBytes) and when a write found no space, until Close.
func (s *Store) checkpointer(every time.Duration) {
	defer close(s.checkpointDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.checkpointStop:
			return
		case <-t.C:
			if fi, err := os.Stat(s.path + "-wal"); err == nil && fi.Size() > walTruncateBytes {
				s.checkpoint()
			}
		case <-s.checkpointNow:
			s.checkpoint()
		}
	}
}

// checkpoint copies the WAL into the database and truncates it, under the
// write lock (no writer of this process waits behind it for long: it is
// bounded by checkpointTimeout). A failure (busy readers, no space yet) is
// harmless: the next one retries.
func (s *Store) checkpoint() {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), checkpointTimeout)
	defer cancel()
	var busy, logPages, done int
	err := s.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logPages, &done)
	if err != nil || busy != 0 {
		slog.Debug("store: WAL checkpoint did not complete", "busy", busy, "err", err)
		return
	}
	slog.Debug("store: WAL checkpointed and truncated", "pages", done)
}

// Ping checks that the database answers a query (readiness probes).
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}
