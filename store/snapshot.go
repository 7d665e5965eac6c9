package store

import (
	"context"
	"fmt"
	"os"

	"github.com/webtaskd/webtaskd/store/backup"
)

// Snapshot writes a consistent copy of the whole database to path (which
// must not exist) with VACUUM INTO: one read transaction, so writers go on
// and the copy holds exactly the writes committed before it began.
// SQLite only: a PostgreSQL store refuses with backup.ErrSharedStore (use
// pg_dump and keep the key-encryption key file).
func (s *Store) Snapshot(ctx context.Context, path string) error {
	if s.IsShared() {
		return backup.ErrSharedStore
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("store: snapshot %s: file exists", path)
	}
	if _, err := s.db.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		return fmt.Errorf("store: snapshot: %w", err)
	}
	return os.Chmod(path, 0o600)
}
