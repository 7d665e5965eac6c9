package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
)

// Quotas bound what one container may store (types.Quotas): the daemon's
// defaults (Options.Quotas, zero: unlimited) and a container's overrides
// (its limits, zero: the daemon's). They are checked inside the write's
// transaction, so a refused write stores nothing, and concurrent writes
// cannot overrun them: on SQLite write transactions are exclusive; on
// PostgreSQL, where READ COMMITTED lets two daemons' checks pass at once,
// a write under a quota first takes the transaction-scoped advisory lock
// of that quota and container (lockQuota; no lock when there is no quota).
type Quotas = types.Quotas

// Advisory lock classes (dialect.quotaLock), one per quota: a write holds
// at most one, so quota-checked writes of different kinds cannot deadlock
// (PutData takes its quota lock while holding the webtask's row lock,
// which a PutWebtask holding the webtasks lock may wait for).
const (
	quotaLockWebtasks int32 = 0x77740001 + iota
	quotaLockCronJobs
	quotaLockStorage
)

// quotaLockClass is the lock class of the count quota of table.
var quotaLockClass = map[string]int32{"webtasks": quotaLockWebtasks, "cron_jobs": quotaLockCronJobs}

// lockQuota takes the dialect's quota lock of class for container, if
// any, until q's transaction ends.
func lockQuota(ctx context.Context, d dialect, q querier, class int32, container string) error {
	stmt := d.quotaLock()
	if stmt == "" {
		return nil
	}
	if _, err := q.ExecContext(ctx, stmt, class, container); err != nil {
		return fmt.Errorf("store: quota lock of %s: %w", container, err)
	}
	return nil
}

// ErrQuota is the kind of a write refused by a quota (HTTP 403, saying
// which quota).
var ErrQuota = errdefs.ErrDenied

// checkCountQuota refuses a new row name in container when table already
// holds max rows of container (max 0: no quota; an existing row is
// replaced, never refused).
func checkCountQuota(ctx context.Context, d dialect, q querier, table, what, container, name string, max int) error {
	if max <= 0 {
		return nil
	}
	if err := lockQuota(ctx, d, q, quotaLockClass[table], container); err != nil {
		return err
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
func checkStorageQuota(ctx context.Context, d dialect, q querier, container, name, doc string, max int64) error {
	if max <= 0 || doc == "null" {
		return nil
	}
	if err := lockQuota(ctx, d, q, quotaLockStorage, container); err != nil {
		return err
	}
	var others int64
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(SUM(`+d.textBytes("data")+`), 0) FROM webtask_data
		WHERE container = ? AND name != ? AND data != 'null'`, container, name).Scan(&others); err != nil {
		return err
	}
	if others+int64(len(doc)) > max {
		return errdefs.Errorf(ErrQuota, "quota exceeded: the storage documents of container `%s` would take %d bytes, more than its %d",
			container, others+int64(len(doc)), max)
	}
	return nil
}

// quotasOf returns container's quotas: its overrides where non-zero, else
// the daemon's.
func (s *Store) quotasOf(ctx context.Context, q querier, container string) (Quotas, error) {
	eff := s.quotas
	var o Quotas
	err := q.QueryRowContext(ctx, `SELECT max_webtasks, max_cron_jobs, max_storage_bytes FROM container_limits WHERE container = ?`,
		container).Scan(&o.MaxWebtasks, &o.MaxCronJobs, &o.MaxStorageBytes)
	if errors.Is(err, sql.ErrNoRows) {
		return eff, nil
	}
	if err != nil {
		return eff, err
	}
	if o.MaxWebtasks > 0 {
		eff.MaxWebtasks = o.MaxWebtasks
	}
	if o.MaxCronJobs > 0 {
		eff.MaxCronJobs = o.MaxCronJobs
	}
	if o.MaxStorageBytes > 0 {
		eff.MaxStorageBytes = o.MaxStorageBytes
	}
	return eff, nil
}
