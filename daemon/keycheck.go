package daemon

import (
	"context"
	"fmt"
	"strings"

	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/keyring"
	"github.com/webtaskd/webtaskd/store/token"
)

// checkKeySets refuses to start when the database names key sets that the
// keys directory lacks: opening the key ring would create a fresh key set
// and every secret sealed and token signed with the lost ones would fail on
// every request. It reads only; nothing is created or changed.
func checkKeySets(ctx context.Context, dbPath, keysDir string) error {
	refs, err := store.ReadKeyRefs(ctx, dbPath)
	if err != nil {
		return err
	}
	kids := refs.SealedKids
	for _, raw := range refs.Tokens {
		if _, hdr, err := token.ParseUnverified(raw); err == nil {
			if kid, _ := hdr["kid"].(string); kid != "" {
				kids = append(kids, kid)
			}
		}
	}
	missing, err := keyring.Missing(keysDir, kids)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("the database %s uses key sets missing from %s: %s; restore that directory from a backup "+
			"(webtaskd does not start, and creates no new key set, while they are missing)",
			dbPath, keysDir, strings.Join(missing, ", "))
	}
	return nil
}
