package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/backup"
)

// ManifestFile names the archive's description (backupManifest).
const ManifestFile = "manifest.json"

// backupManifest describes an archive; restore checks it.
type backupManifest struct {
	Format        int       `json:"format"`
	SchemaVersion int       `json:"schema_version"`
	CreatedAt     time.Time `json:"created_at"`
}

// Backup writes an encrypted archive (store/backup) of the data directory
// to w: a consistent snapshot of the database, every key set file and the
// master token. The caller keeps key sets from being rotated or retired
// meanwhile (the API holds its key lock), so every key set the snapshot
// uses is in the archive.
func (d *Daemon) Backup(ctx context.Context, passphrase []byte, w io.Writer) error {
	if d.cfg.Cluster.Shared() {
		return errClusterBackup
	}
	if len(passphrase) < backup.MinPassphraseBytes {
		return backup.ErrShortPassphrase
	}
	tmp, err := os.MkdirTemp(d.cfg.DataDir, ".backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	snap := filepath.Join(tmp, DatabaseFile)
	if err := d.store.Snapshot(ctx, snap); err != nil {
		return err
	}
	db, err := os.ReadFile(snap)
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(backupManifest{Format: 1, SchemaVersion: store.SchemaVersion(), CreatedAt: time.Now().UTC()})
	if err != nil {
		return err
	}
	files := []backup.File{{Name: ManifestFile, Mode: 0o600, Data: manifest}, {Name: DatabaseFile, Mode: 0o600, Data: db}}
	keysDir := filepath.Join(d.cfg.DataDir, KeysDir)
	des, err := os.ReadDir(keysDir)
	if err != nil {
		return err
	}
	for _, de := range des {
		if !de.Type().IsRegular() || strings.HasPrefix(de.Name(), ".") {
			continue // temp files
		}
		b, err := os.ReadFile(filepath.Join(keysDir, de.Name()))
		if err != nil {
			return err
		}
		files = append(files, backup.File{Name: KeysDir + "/" + de.Name(), Mode: 0o600, Data: b})
	}
	if b, err := os.ReadFile(filepath.Join(d.cfg.DataDir, MasterTokenFile)); err == nil {
		files = append(files, backup.File{Name: MasterTokenFile, Mode: 0o600, Data: b})
	}
	return backup.Seal(w, passphrase, files)
}

// Restore fills the empty (or missing) data directory dataDir from the
// archive r: the database, the key sets and the master token, modes 0700
// and 0600. It refuses a data directory that holds anything, an archive of
// a newer schema than this binary knows, and an archive whose database
// uses key sets it lacks. On error it removes what it wrote.
func Restore(ctx context.Context, dataDir string, passphrase []byte, r io.Reader) (err error) {
	if des, err := os.ReadDir(dataDir); err == nil && len(des) > 0 {
		return errdefs.Errorf(errdefs.ErrConflict, "restore: %s is not empty; restore into an empty or new data directory", dataDir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("restore: %w", err)
	}
	files, err := backup.Open(r, passphrase)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	var m backupManifest
	var haveDB bool
	for _, f := range files {
		switch f.Name {
		case ManifestFile:
			if err := json.Unmarshal(f.Data, &m); err != nil {
				return fmt.Errorf("restore: manifest: %w", err)
			}
		case DatabaseFile:
			haveDB = true
		}
	}
	if m.Format != 1 || !haveDB {
		return fmt.Errorf("restore: %w: no manifest of format 1 or no database", backup.ErrNotArchive)
	}
	if m.SchemaVersion > store.SchemaVersion() {
		return fmt.Errorf("restore: the backup is of schema version %d, newer than this binary knows (%d): restore it with that webtaskd version or newer",
			m.SchemaVersion, store.SchemaVersion())
	}
	if err := os.MkdirAll(dataDir, dataDirMode); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer func() {
		if err != nil { // leave the directory empty again
			des, _ := os.ReadDir(dataDir)
			for _, de := range des {
				os.RemoveAll(filepath.Join(dataDir, de.Name()))
			}
		}
	}()
	if err := os.Chmod(dataDir, dataDirMode); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dataDir, KeysDir), dataDirMode); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for _, f := range files {
		if f.Name == ManifestFile {
			continue
		}
		if dir := path.Dir(f.Name); dir != "." && dir != KeysDir {
			return fmt.Errorf("restore: %w: unexpected file %q", backup.ErrNotArchive, f.Name)
		}
		if err := writeFileAtomic(filepath.Join(dataDir, filepath.FromSlash(f.Name)), f.Data, 0o600); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	if err := checkKeySets(ctx, filepath.Join(dataDir, DatabaseFile), filepath.Join(dataDir, KeysDir)); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}
