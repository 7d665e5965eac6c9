package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
)

// fileMode is the mode of the database and of its -wal and -shm companions:
// they hold the webtasks' code, sealed secrets and tokens.
const fileMode = 0o600

// prepareFiles makes the database file exist with mode 0600 before SQLite
// opens it (SQLite creates the -wal and -shm files with the database
// file's mode), and tightens the database and its companions when an
// earlier version left them wider.
func prepareFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
	switch {
	case err == nil:
		if err := f.Close(); err != nil {
			return fmt.Errorf("store: create %s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("store: create %s: %w", path, err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if perm := fi.Mode().Perm(); perm&^fileMode != 0 {
			if err := os.Chmod(p, fileMode); err != nil {
				return fmt.Errorf("store: tighten %s: %w", p, err)
			}
			slog.Info("store: tightened file mode", "file", p, "was", fmt.Sprintf("%#o", perm), "now", fmt.Sprintf("%#o", fileMode))
		}
	}
	return nil
}
