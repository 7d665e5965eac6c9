package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
)

// CronHistoryKeep is how many results the store keeps per cron job; older
// ones are trimmed when a new one is recorded (reference §4: last 100).
const CronHistoryKeep = 100

// Cron job states.
const (
	CronActive   = "active"
	CronInactive = "inactive"
)

// Cron result types.
const (
	CronSuccess = "success"
	CronError   = "error"
)

// CronJob is a scheduled run of the named webtask Container/Name. Meta is
// never nil in a stored copy.
type CronJob struct {
	Container string
	Name      string
	// Token is sent as "Authorization: Bearer" on each run; "" means the
	// webtask's current token.
	Token    string
	Schedule string
	TZ       string
	State    string
	Meta     map[string]string

	CreatedAt       time.Time
	UpdatedAt       time.Time
	LastScheduledAt time.Time // zero: never ran
	RunCount        int
	ErrorCount      int
}

// CronResult is one run of a cron job.
type CronResult struct {
	ScheduledAt time.Time
	StartedAt   time.Time
	CompletedAt time.Time
	// Type is CronSuccess or CronError.
	Type       string
	StatusCode int
	Body       string
	Headers    map[string]string
}

// CronListOptions filters ListCronJobs.
type CronListOptions struct {
	// Container limits the list to one container; empty lists all.
	Container string
	// Meta keeps jobs holding every given key:value pair.
	Meta map[string]string
	// State keeps jobs in that state; empty keeps all.
	State  string
	Offset int
	// Limit caps the page; 0 means no limit.
	Limit int
}

// PutCronJob creates or replaces the cron job j.Container/j.Name (validated
// by the caller) and returns the stored copy. Replacing keeps CreatedAt,
// the counters and the history. The webtask Container/Name must exist,
// else the error wraps ErrNotFound.
func (s *Store) PutCronJob(ctx context.Context, j *CronJob) (_ *CronJob, err error) {
	defer s.writeDone(&err)
	if j == nil {
		return nil, fmt.Errorf("store: put nil cron job")
	}
	metaJSON, err := marshalObject(j.Meta)
	if err != nil {
		return nil, fmt.Errorf("store: put cron job %s/%s: meta: %w", j.Container, j.Name, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: put cron job %s/%s: %w", j.Container, j.Name, err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM webtasks WHERE container = ? AND name = ?`, j.Container, j.Name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: cron job %s/%s: %w", j.Container, j.Name,
			errdefs.Errorf(ErrWebtaskNotFound, "no webtask `%s` in container `%s` to schedule", j.Name, j.Container))
	}
	if err != nil {
		return nil, fmt.Errorf("store: put cron job %s/%s: %w", j.Container, j.Name, err)
	}
	quotas, err := s.quotasOf(ctx, tx, j.Container)
	if err != nil {
		return nil, fmt.Errorf("store: put cron job %s/%s: quotas: %w", j.Container, j.Name, err)
	}
	if err := checkCountQuota(ctx, s.db.d, tx, "cron_jobs", "cron jobs", j.Container, j.Name, quotas.MaxCronJobs); err != nil {
		return nil, err
	}
	now := s.now().UTC().UnixNano()
	if _, err := tx.ExecContext(ctx, `INSERT INTO cron_jobs
		(container, name, token, schedule, tz, state, meta, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (container, name) DO UPDATE SET
			token = excluded.token, schedule = excluded.schedule, tz = excluded.tz,
			state = excluded.state, meta = excluded.meta, updated_at = excluded.updated_at`,
		j.Container, j.Name, j.Token, j.Schedule, j.TZ, j.State, string(metaJSON), now, now); err != nil {
		return nil, fmt.Errorf("store: put cron job %s/%s: %w", j.Container, j.Name, err)
	}
	out, err := scanCronJob(tx.QueryRowContext(ctx, `SELECT `+cronColumns+` FROM cron_jobs WHERE container = ? AND name = ?`, j.Container, j.Name))
	if err != nil {
		return nil, fmt.Errorf("store: put cron job %s/%s: %w", j.Container, j.Name, err)
	}
	if err := s.notify(ctx, tx, ChangeCron, j.Container+"/"+j.Name); err != nil {
		return nil, fmt.Errorf("store: put cron job %s/%s: %w", j.Container, j.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: put cron job %s/%s: %w", j.Container, j.Name, err)
	}
	return out, nil
}

// GetCronJob returns the cron job container/name, or an error wrapping
// ErrNotFound.
func (s *Store) GetCronJob(ctx context.Context, container, name string) (*CronJob, error) {
	j, err := scanCronJob(s.db.QueryRowContext(ctx, `SELECT `+cronColumns+` FROM cron_jobs WHERE container = ? AND name = ?`, container, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, cronJobNotFound(container, name)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get cron job %s/%s: %w", container, name, err)
	}
	return j, nil
}

// SetCronJobState changes a job's state and returns the stored copy, or an
// error wrapping ErrNotFound.
func (s *Store) SetCronJobState(ctx context.Context, container, name, state string) (_ *CronJob, err error) {
	defer s.writeDone(&err)
	res, err := s.execNotify(ctx, ChangeCron, container+"/"+name, `UPDATE cron_jobs SET state = ?, updated_at = ? WHERE container = ? AND name = ?`,
		state, s.now().UTC().UnixNano(), container, name)
	if err != nil {
		return nil, fmt.Errorf("store: cron job %s/%s state: %w", container, name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return nil, cronJobNotFound(container, name)
	}
	return s.GetCronJob(ctx, container, name)
}

// DeleteCronJob removes a job and its history, or returns an error
// wrapping ErrNotFound. Deleting the webtask deletes its job too.
func (s *Store) DeleteCronJob(ctx context.Context, container, name string) (err error) {
	defer s.writeDone(&err)
	res, err := s.execNotify(ctx, ChangeCron, container+"/"+name, `DELETE FROM cron_jobs WHERE container = ? AND name = ?`, container, name)
	if err != nil {
		return fmt.Errorf("store: delete cron job %s/%s: %w", container, name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return cronJobNotFound(container, name)
	}
	return nil
}

// ListCronJobs returns jobs ordered by container, then name, filtered by
// o.Container, o.State and every o.Meta pair, paged by o.Offset and o.Limit
// (0: all).
func (s *Store) ListCronJobs(ctx context.Context, o CronListOptions) ([]*CronJob, error) {
	where, args := listFilter(s.db.d, "cron_jobs", o.Container, o.Meta)
	if o.State != "" {
		where = append(where, "state = ?")
		args = append(args, o.State)
	}
	q := `SELECT ` + cronColumns + ` FROM cron_jobs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY container, name"
	if o.Limit > 0 || o.Offset > 0 {
		var limit any = o.Limit
		if o.Limit <= 0 {
			limit = s.db.d.noLimit()
		}
		q += " LIMIT ? OFFSET ?"
		args = append(args, limit, max(o.Offset, 0))
	}
	out, err := queryAll(ctx, s.db, scanCronJob, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list cron jobs: %w", err)
	}
	return out, nil
}

// AddCronResult records one run of container/name: it appends r, trims the
// history to the newest CronHistoryKeep results, updates the job's
// counters and last_scheduled_at (which never goes back), and completes
// the claim of tick r.ScheduledAt if there is one (ClaimCronTick), in one
// transaction. A job deleted in the meantime gives an error wrapping
// ErrNotFound and records nothing; so does a claim that expired
// (ErrClaimExpired: ExpireCronClaims recorded an error for the tick).
func (s *Store) AddCronResult(ctx context.Context, container, name string, r *CronResult) (err error) {
	defer s.writeDone(&err)
	return s.inTx(ctx, func(tx *txn) error {
		if err := s.completeClaim(ctx, tx, container, name, r.ScheduledAt); err != nil {
			return err
		}
		return s.addCronResult(ctx, tx, container, name, r)
	})
}

// addCronResult is AddCronResult inside tx, without the claim.
func (s *Store) addCronResult(ctx context.Context, tx *txn, container, name string, r *CronResult) error {
	headersJSON, err := marshalObject(r.Headers)
	if err != nil {
		return fmt.Errorf("store: cron result %s/%s: headers: %w", container, name, err)
	}
	errInc := 0
	if r.Type == CronError {
		errInc = 1
	}
	sch := r.ScheduledAt.UnixNano()
	res, err := tx.ExecContext(ctx, `UPDATE cron_jobs SET run_count = run_count + 1, error_count = error_count + ?,
		last_scheduled_at = CASE WHEN last_scheduled_at < ? THEN ? ELSE last_scheduled_at END
		WHERE container = ? AND name = ?`, errInc, sch, sch, container, name)
	if err != nil {
		return fmt.Errorf("store: cron result %s/%s: %w", container, name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return cronJobNotFound(container, name)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO cron_results
		(container, name, scheduled_at, started_at, completed_at, type, status_code, body, headers)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		container, name, sch, r.StartedAt.UnixNano(), r.CompletedAt.UnixNano(),
		r.Type, r.StatusCode, r.Body, string(headersJSON)); err != nil {
		return fmt.Errorf("store: cron result %s/%s: %w", container, name, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM cron_results WHERE container = ? AND name = ? AND id <= (
		SELECT id FROM cron_results WHERE container = ? AND name = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
		container, name, container, name, CronHistoryKeep); err != nil {
		return fmt.Errorf("store: cron result %s/%s: trim: %w", container, name, err)
	}
	return nil
}

// CronHistory returns a job's results, newest first, paged by offset and
// limit (0: all kept). A missing job gives an error wrapping ErrNotFound.
func (s *Store) CronHistory(ctx context.Context, container, name string, offset, limit int) ([]*CronResult, error) {
	if _, err := s.GetCronJob(ctx, container, name); err != nil {
		return nil, err
	}
	var lim any = limit
	if limit <= 0 {
		lim = s.db.d.noLimit()
	}
	out, err := queryAll(ctx, s.db, scanCronResult, `SELECT scheduled_at, started_at, completed_at, type, status_code, body, headers
		FROM cron_results WHERE container = ? AND name = ? ORDER BY id DESC LIMIT ? OFFSET ?`,
		container, name, lim, max(offset, 0))
	if err != nil {
		return nil, fmt.Errorf("store: cron history %s/%s: %w", container, name, err)
	}
	return out, nil
}

func scanCronResult(sc scanner) (*CronResult, error) {
	var (
		r             CronResult
		sch, st, done int64
		headersJSON   string
	)
	if err := sc.Scan(&sch, &st, &done, &r.Type, &r.StatusCode, &r.Body, &headersJSON); err != nil {
		return nil, err
	}
	r.ScheduledAt, r.StartedAt, r.CompletedAt = unixTime(sch), unixTime(st), unixTime(done)
	if err := json.Unmarshal([]byte(headersJSON), &r.Headers); err != nil {
		return nil, fmt.Errorf("headers: %w", err)
	}
	if r.Headers == nil {
		r.Headers = map[string]string{}
	}
	return &r, nil
}

const cronColumns = `container, name, token, schedule, tz, state, meta, created_at, updated_at, last_scheduled_at, run_count, error_count`

func scanCronJob(sc scanner) (*CronJob, error) {
	var (
		j                      CronJob
		metaJSON               string
		created, updated, last int64
	)
	if err := sc.Scan(&j.Container, &j.Name, &j.Token, &j.Schedule, &j.TZ, &j.State, &metaJSON,
		&created, &updated, &last, &j.RunCount, &j.ErrorCount); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(metaJSON), &j.Meta); err != nil {
		return nil, fmt.Errorf("cron job %s/%s: meta: %w", j.Container, j.Name, err)
	}
	if j.Meta == nil {
		j.Meta = map[string]string{}
	}
	j.CreatedAt, j.UpdatedAt, j.LastScheduledAt = unixTime(created), unixTime(updated), unixTime(last)
	return &j, nil
}

// unixTime converts stored Unix nanoseconds; 0 is the zero time.
func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// cronJobNotFound is the error of a missing job container/name.
func cronJobNotFound(container, name string) error {
	return fmt.Errorf("store: cron job %s/%s: %w", container, name, errdefs.Errorf(ErrCronJobNotFound, "no cron job `%s`", name))
}

// Wire is r's wire shape (GET /api/cron/{c}/{n}/history, a job's last
// result).
func (r *CronResult) Wire() types.CronResult {
	h := r.Headers
	if h == nil {
		h = map[string]string{}
	}
	return types.CronResult{
		ScheduledAt: r.ScheduledAt, StartedAt: r.StartedAt, CompletedAt: r.CompletedAt,
		Type: r.Type, StatusCode: r.StatusCode, Body: r.Body, Headers: h,
	}
}
