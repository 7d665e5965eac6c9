package store

import (
	"context"
	"database/sql"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// Quotas bound what one container may store; a zero field is unlimited.
// They are checked inside the write's transaction (or under the store's
// write lock), so concurrent writes cannot overrun them, and a refused
// write stores nothing.
type Quotas struct {
	// MaxWebtasks caps the named webtasks of a container.
	MaxWebtasks int
	// MaxCronJobs caps the cron jobs of a container.
	MaxCronJobs int
	// MaxStorageBytes caps the summed size of a container's storage
	// documents (ctx.storage and the /data routes), in bytes.
	MaxStorageBytes int64
}

// ErrQuota is the kind of a write refused by a quota (HTTP 403, saying
// which quota).
var ErrQuota = errdefs.ErrDenied

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// checkCountQuota refuses a new row name in container when table already
// holds max rows of container (max 0: no quota; an existing row is
// replaced, never refused).
func checkCountQuota(ctx context.Context, q querier, table, what, container, name string, max int) error {
	if max <= 0 {
		return nil
	}
	var n int
	var exists bool
	if err := q.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM `+table+` WHERE container = ?),
		EXISTS (SELECT 1 FROM `+table+` WHERE container = ? AND name = ?)`, container, container, name).Scan(&n, &exists); err != nil {
		return err
	}
	if !exists && n >= max {
		return errdefs.Errorf(ErrQuota, "quota exceeded: container `%s` holds %d %s, its limit", container, n, what)
	}
	return nil
}

// checkStorageQuota refuses storing doc as container/name's document when
// the container's documents would then exceed max bytes.
func checkStorageQuota(ctx context.Context, q querier, container, name, doc string, max int64) error {
	if max <= 0 || doc == "null" {
		return nil
	}
	var others int64
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(SUM(length(CAST(data AS BLOB))), 0) FROM webtask_data
		WHERE container = ? AND name != ? AND data != 'null'`, container, name).Scan(&others); err != nil {
		return err
	}
	if others+int64(len(doc)) > max {
		return errdefs.Errorf(ErrQuota, "quota exceeded: the storage documents of container `%s` would take %d bytes, more than its %d",
			container, others+int64(len(doc)), max)
	}
	return nil
}
