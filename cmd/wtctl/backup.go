package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/webtaskd/webtaskd/store/backup"

	"github.com/spf13/cobra"

	"github.com/webtaskd/webtaskd/api/types"
)

func newBackupCmd(opts *connOptions) *cobra.Command {
	var out, passFile string
	cmd := &cobra.Command{
		Use:   "backup --out FILE --passphrase-file P",
		Short: "Take an encrypted backup (database snapshot, key sets, master token) while the daemon serves",
		Long: "Asks the daemon for a backup archive (POST /api/admin/backup, master token): a consistent\n" +
			"snapshot of the database with the key sets and the master token, encrypted by the daemon\n" +
			"under a key derived from the passphrase (scrypt, AES-256-GCM). Restore it with\n" +
			"`webtaskd restore --data-dir DIR --passphrase-file P FILE`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" || passFile == "" {
				return errors.New("--out and --passphrase-file are required")
			}
			pass, err := backup.ReadPassphraseFile(passFile)
			if err != nil {
				return err
			}
			c, err := opts.client()
			if err != nil {
				return err
			}
			resp, err := c.send(cmd.Context(), "POST", "/api/admin/backup", types.BackupRequest{Passphrase: string(pass)})
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			// Written to a temporary file next to FILE, renamed once complete.
			tmp, err := os.CreateTemp(filepath.Dir(out), ".wtctl-backup-")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			n, err := io.Copy(tmp, resp.Body)
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backup written to %s (%d bytes)\n", out, n)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "archive file to write (mode 0600)")
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "file holding the passphrase (first line, at least 12 bytes)")
	return cmd
}
