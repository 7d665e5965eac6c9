package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strconv"
)

// KeyRefs is what a database holds that needs key sets of the key ring:
// the key ids that sealed webtask secrets, and the stored tokens (webtask
// and cron job tokens), each signed by the key set its header names.
type KeyRefs struct {
	// SealedKids are the distinct key ids of sealed secrets.
	SealedKids []string
	// Tokens are the stored JWTs, not verified (the caller reads their
	// kid). Never log them.
	Tokens []string
}

// ReadKeyRefs reads the key references of the database at path without
// changing it (read-only, no migration). A missing database, or one
// without the tables yet, has none.
func ReadKeyRefs(ctx context.Context, path string) (KeyRefs, error) {
	var refs KeyRefs
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return refs, nil
	} else if err != nil {
		return refs, fmt.Errorf("store: %w", err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("_busy_timeout", strconv.Itoa(busyTimeoutMS))
	db, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return refs, fmt.Errorf("store: open %s read-only: %w", path, err)
	}
	defer db.Close()
	for _, r := range []struct {
		table, query string
		into         *[]string
	}{
		{"webtasks", `SELECT DISTINCT secrets_kid FROM webtasks WHERE secrets_kid != ''`, &refs.SealedKids},
		{"webtasks", `SELECT token FROM webtasks WHERE token != ''`, &refs.Tokens},
		{"cron_jobs", `SELECT token FROM cron_jobs WHERE token != ''`, &refs.Tokens},
	} {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, r.table).Scan(&n); err != nil {
			return refs, fmt.Errorf("store: read key references: %w", err)
		}
		if n == 0 {
			continue
		}
		if err := scanStrings(ctx, db, r.query, r.into); err != nil {
			return refs, fmt.Errorf("store: read key references: %w", err)
		}
	}
	return refs, nil
}

func scanStrings(ctx context.Context, db *sql.DB, query string, into *[]string) error {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		*into = append(*into, s)
	}
	return rows.Err()
}
