package store

import (
	"errors"
	"log/slog"
	"syscall"

	"github.com/mattn/go-sqlite3"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// A full disk. SQLite answers SQLITE_FULL ("database or disk is full") when
// a write finds no space; the transaction is rolled back, the database
// stays intact and reads keep working. Every write method turns that (or a
// bare ENOSPC) into errNoSpace (errdefs.ErrNoSpace, HTTP 507), logs the
// first one at WARN and the recovery at INFO (not every failed request),
// and asks the checkpointer (wal.go) for a TRUNCATE checkpoint, which
// gives the space of the WAL back once the database can take its pages.

// errNoSpace is the caller-facing error of a write refused for lack of
// space. It names no path.
var errNoSpace = errdefs.New(errdefs.ErrNoSpace,
	"the daemon's storage is full: the change was not saved (reads keep working; retry when space is freed)")

// isNoSpace reports whether err is SQLite's SQLITE_FULL or an ENOSPC.
func isNoSpace(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrFull || se.SystemErrno == syscall.ENOSPC) {
		return true
	}
	return errors.Is(err, syscall.ENOSPC)
}

// writeDone is deferred by every write method with a pointer to its error:
// a lack of space becomes errNoSpace, and the store's full state (logged on
// change) follows the outcome of the writes.
func (s *Store) writeDone(errp *error) {
	err := *errp
	switch {
	case err == nil:
		if s.full.CompareAndSwap(true, false) {
			slog.Info("store: writes succeed again: the data volume has space")
		}
	case isNoSpace(err):
		if s.full.CompareAndSwap(false, true) {
			slog.Warn("store: the data volume is full: writes answer 507 until space is freed; reads keep working",
				"path", s.path, "err", err)
		} else {
			slog.Debug("store: write refused, the data volume is still full", "err", err)
		}
		select {
		case s.checkpointNow <- struct{}{}:
		default: // one is pending already
		}
		*errp = errNoSpace
	}
}
