package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// Cron ticks run exactly once across the daemons sharing a store. Every
// daemon schedules every job; at a tick each one calls ClaimCronTick, whose
// one conditional INSERT lets exactly one caller win (the primary key of
// cron_claims, and the job's last_scheduled_at being older than the tick).
// No leader and no session lock: a claimer that dies or hangs holds the
// tick only for its lease; ExpireCronClaims (run by every daemon) then
// records the tick as an error, and it is not run again. The winner
// records its run with AddCronResult, which completes the claim.

// Claim states (cron_claims.state).
const (
	claimRunning = "running"
	claimDone    = "done"
	claimExpired = "expired"
)

// claimKeep is how long claims are kept after their tick, so a daemon
// whose clock lags by less than that cannot claim a tick again.
const claimKeep = 24 * time.Hour

// ErrClaimExpired: AddCronResult for a tick whose claim had expired (an
// error result was recorded for it instead); nothing is recorded.
var ErrClaimExpired = errdefs.New(errdefs.ErrConflict, "the claim of this cron tick expired before its result was recorded")

// ClaimCronTick claims the run of job container/name at tick for node,
// for lease: claimed is true for exactly one caller per (job, tick)
// across every store on the database. It is false when another caller
// claimed it, when the job's last recorded run is at or after tick, or
// when the job does not exist (or was deleted). The winner runs the job
// and records the result with AddCronResult (ScheduledAt = tick) before
// the lease ends; else ExpireCronClaims records an error for the tick.
// Times are taken from tick and the store's clock (Options.Now).
func (s *Store) ClaimCronTick(ctx context.Context, container, name string, tick time.Time, node string, lease time.Duration) (claimed bool, err error) {
	defer s.writeDone(&err)
	if lease <= 0 {
		return false, fmt.Errorf("store: claim cron tick: lease %v must be positive", lease)
	}
	now := s.now().UTC()
	res, err := s.db.ExecContext(ctx, `INSERT INTO cron_claims (container, name, tick, node, claimed_at, lease_until, state)
		SELECT container, name, ?, ?, ?, ?, 'running' FROM cron_jobs
		WHERE container = ? AND name = ? AND last_scheduled_at < ?
		ON CONFLICT (container, name, tick) DO NOTHING`,
		tick.UnixNano(), node, now.UnixNano(), now.Add(lease).UnixNano(), container, name, tick.UnixNano())
	if err != nil {
		return false, fmt.Errorf("store: claim cron tick %s/%s: %w", container, name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: claim cron tick %s/%s: %w", container, name, err)
	}
	return n == 1, nil
}

// completeClaim marks the claim of tick done inside AddCronResult's
// transaction. A tick never claimed (a caller that does not claim, such
// as a single daemon's scheduler of old) is fine; an expired one is
// ErrClaimExpired.
func (s *Store) completeClaim(ctx context.Context, tx *txn, container, name string, tick time.Time) error {
	var state string
	err := tx.QueryRowContext(ctx, `SELECT state FROM cron_claims WHERE container = ? AND name = ? AND tick = ?`+s.db.d.lockRowsOf("cron_claims"),
		container, name, tick.UnixNano()).Scan(&state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return err
	case state == claimExpired:
		return fmt.Errorf("store: cron result %s/%s at %s: %w", container, name, tick.UTC().Format(time.RFC3339), ErrClaimExpired)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE cron_claims SET state = 'done' WHERE container = ? AND name = ? AND tick = ?`,
		container, name, tick.UnixNano()); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM cron_claims WHERE container = ? AND name = ? AND tick < ? AND state != 'running'`,
		container, name, tick.Add(-claimKeep).UnixNano())
	return err
}

// ExpireCronClaims records an error result for every claim whose lease
// ended before now without a result (its claimer died or hung), and
// returns how many. The tick is not run again. Safe to call from every
// daemon at once: each expired claim is recorded once.
func (s *Store) ExpireCronClaims(ctx context.Context, now time.Time) (n int, err error) {
	defer s.writeDone(&err)
	type claim struct {
		container, name, node string
		tick, claimedAt       int64
	}
	var expired []claim
	err = s.inTx(ctx, func(tx *txn) error {
		// The UPDATE is the claim's lock: a concurrent expirer waits, then
		// finds the state changed and skips the row.
		rows, err := tx.QueryContext(ctx, `UPDATE cron_claims SET state = 'expired'
			WHERE state = 'running' AND lease_until < ?
			RETURNING container, name, node, tick, claimed_at`, now.UnixNano())
		if err != nil {
			return err
		}
		for rows.Next() {
			var c claim
			if err := rows.Scan(&c.container, &c.name, &c.node, &c.tick, &c.claimedAt); err != nil {
				rows.Close()
				return err
			}
			expired = append(expired, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, c := range expired {
			r := &CronResult{ScheduledAt: unixTime(c.tick), StartedAt: unixTime(c.claimedAt), CompletedAt: now.UTC(),
				Type: CronError, Body: fmt.Sprintf("the run was not completed: its claim by node %q expired", c.node)}
			if err := s.addCronResult(ctx, tx, c.container, c.name, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: expire cron claims: %w", err)
	}
	return len(expired), nil
}
