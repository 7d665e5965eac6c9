package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/webtaskd/webtaskd/store/token"
)

// ensureMasterToken loads <data-dir>/master.token, or mints and writes a new
// one when it is missing or no longer verifies (for example after it was
// revoked or its key set was retired). It runs at start and after every
// revocation and key retirement. In cluster mode the token is the
// cluster's, kept sealed in the database (the first member mints it; a
// member that finds it invalid mints the next one for all), and the file
// is this member's copy.
func (d *Daemon) ensureMasterToken() error {
	d.masterMu.Lock()
	defer d.masterMu.Unlock()
	path := filepath.Join(d.cfg.DataDir, MasterTokenFile)
	v := token.Verifier{Keys: d.ring, Revoked: d.store.AnyRevoked}
	valid := func(tok string) bool { _, err := v.Verify(tok, time.Now()); return err == nil }
	mint := func() (string, error) {
		return token.Sign(d.ring.Current(), &token.Claims{}) // no ten: master; no dd: unlimited delegation
	}
	if d.cfg.Cluster.Shared() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tok, err := d.store.MasterToken(ctx, valid, mint)
		if err != nil {
			return err
		}
		return d.keepMasterToken(path, tok)
	}
	if raw, err := os.ReadFile(path); err == nil {
		tok := strings.TrimSpace(string(raw))
		if valid(tok) {
			d.masterToken = tok
			return d.tighten(path, 0o600)
		}
		d.log.Warn("master token no longer verifies; minting a new one", "file", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	tok, err := mint()
	if err != nil {
		return err
	}
	return d.keepMasterToken(path, tok)
}

// keepMasterToken makes tok the master token and writes it to path unless
// the file holds it already. Call with masterMu held.
func (d *Daemon) keepMasterToken(path, tok string) error {
	d.masterToken = tok
	if raw, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(raw)) == tok {
		return d.tighten(path, 0o600)
	}
	if err := writeFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
		return err
	}
	d.log.Info("master token written", "file", path)
	return nil
}
