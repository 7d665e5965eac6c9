package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/webtaskd/webtaskd/daemon"
	"github.com/webtaskd/webtaskd/store/backup"
)

// restore is `webtaskd restore --data-dir DIR --passphrase-file P FILE`: it
// fills an empty data directory from a backup archive (wtctl backup).
func restore(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	fs := flag.NewFlagSet("webtaskd restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", daemon.DefaultConfig().DataDir, "the empty (or new) data directory to fill")
	passFile := fs.String("passphrase-file", "", "file holding the backup's passphrase (one line)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: webtaskd restore --data-dir DIR --passphrase-file P ARCHIVE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *passFile == "" {
		fs.Usage()
		return fmt.Errorf("restore: want --passphrase-file and one archive")
	}
	pass, err := backup.ReadPassphraseFile(*passFile)
	if err != nil {
		return err
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	if err := daemon.Restore(ctx, *dataDir, pass, f); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s into %s; start webtaskd with --data-dir %s\n", fs.Arg(0), *dataDir, *dataDir)
	return nil
}
