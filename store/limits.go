package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
)

// ContainerLimits are one webtask container's sandbox limit overrides.
type ContainerLimits = types.ContainerLimits

// GetLimits returns container's overrides, or ErrNotFound when it has none.
func (s *Store) GetLimits(ctx context.Context, container string) (*ContainerLimits, error) {
	l := &ContainerLimits{Container: container}
	var updated int64
	err := s.db.QueryRowContext(ctx, `SELECT memory_mb, cpus, pids, exec_timeout_ms, max_concurrency, max_response_bytes,
		max_webtasks, max_cron_jobs, max_storage_bytes, updated_at
		FROM container_limits WHERE container = ?`, container).
		Scan(&l.MemoryMB, &l.CPUs, &l.Pids, &l.ExecTimeoutMS, &l.MaxConcurrency, &l.MaxResponseBytes,
			&l.Quotas.MaxWebtasks, &l.Quotas.MaxCronJobs, &l.Quotas.MaxStorageBytes, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: limits of %s: %w", container, errdefs.Errorf(ErrLimitsNotFound, "container %s has no limit overrides", container))
	}
	if err != nil {
		return nil, fmt.Errorf("store: limits of %s: %w", container, err)
	}
	l.UpdatedAt = time.Unix(0, updated).UTC()
	return l, nil
}

// PutLimits creates or replaces container's overrides (validated by the
// caller) and returns the stored record.
func (s *Store) PutLimits(ctx context.Context, l ContainerLimits) (_ *ContainerLimits, err error) {
	defer s.writeDone(&err)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	l.UpdatedAt = s.now().UTC()
	_, err = s.execNotify(ctx, ChangeLimits, l.Container, `INSERT INTO container_limits
		(container, memory_mb, cpus, pids, exec_timeout_ms, max_concurrency, max_response_bytes,
		 max_webtasks, max_cron_jobs, max_storage_bytes, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (container) DO UPDATE SET memory_mb = excluded.memory_mb, cpus = excluded.cpus,
			pids = excluded.pids, exec_timeout_ms = excluded.exec_timeout_ms,
			max_concurrency = excluded.max_concurrency, max_response_bytes = excluded.max_response_bytes,
			max_webtasks = excluded.max_webtasks, max_cron_jobs = excluded.max_cron_jobs,
			max_storage_bytes = excluded.max_storage_bytes, updated_at = excluded.updated_at`,
		l.Container, l.MemoryMB, l.CPUs, l.Pids, l.ExecTimeoutMS, l.MaxConcurrency, l.MaxResponseBytes,
		l.Quotas.MaxWebtasks, l.Quotas.MaxCronJobs, l.Quotas.MaxStorageBytes, l.UpdatedAt.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("store: put limits of %s: %w", l.Container, err)
	}
	return &l, nil
}

// DeleteLimits removes container's overrides (ErrNotFound when none).
func (s *Store) DeleteLimits(ctx context.Context, container string) (err error) {
	defer s.writeDone(&err)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	res, err := s.execNotify(ctx, ChangeLimits, container, `DELETE FROM container_limits WHERE container = ?`, container)
	if err != nil {
		return fmt.Errorf("store: delete limits of %s: %w", container, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("store: limits of %s: %w", container, errdefs.Errorf(ErrLimitsNotFound, "container %s has no limit overrides", container))
	}
	return nil
}
