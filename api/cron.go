package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/token"
)

// CronStore persists cron jobs and their history (*store.Store).
type CronStore interface {
	PutCronJob(ctx context.Context, j *store.CronJob) (*store.CronJob, error)
	GetCronJob(ctx context.Context, container, name string) (*store.CronJob, error)
	SetCronJobState(ctx context.Context, container, name, state string) (*store.CronJob, error)
	DeleteCronJob(ctx context.Context, container, name string) error
	ListCronJobs(ctx context.Context, o store.CronListOptions) ([]*store.CronJob, error)
	CronHistory(ctx context.Context, container, name string, offset, limit int) ([]*store.CronResult, error)
}

// CronScheduler keeps the running schedule in step with the store
// (*cron.Scheduler of daemon/cron).
type CronScheduler interface {
	// Put (re)schedules an active job, unschedules an inactive one.
	Put(j *store.CronJob) error
	// Remove unschedules container/name (no-op when not scheduled).
	Remove(container, name string)
	// Validate checks a schedule in the IANA time zone tz; its error is
	// an errdefs.ErrInvalid saying what is wrong.
	Validate(schedule, tz string) error
	// Next returns the n run times of schedule in tz after from; its error
	// is Validate's.
	Next(schedule, tz string, from time.Time, n int) ([]time.Time, error)
	// Record is j's wire shape with its last result (nil: none) at time
	// now (next_available_at from the schedule, expires_at from the token).
	Record(j *store.CronJob, last *store.CronResult, now time.Time) types.CronJob
}

// defaultHistoryLimit is the history page size without ?limit (wt asks 20).
const defaultHistoryLimit = 20

// putCronBody is the PUT /api/cron/{c}/{n} body (§1.1; wt sends the keys
// in this order).
type putCronBody struct {
	Schedule *string           `json:"schedule"`
	Token    *string           `json:"token"`
	State    *string           `json:"state"`
	Meta     map[string]string `json:"meta"`
	TZ       *string           `json:"tz"`
}

// cronParams authenticates the caller for :container and validates :name.
func (s *Server) cronParams(c echo.Context) (container, name string, err error) {
	_, container, err = s.containerParam(c)
	if err != nil {
		return "", "", err
	}
	if name, err = pathName(c, "name", "cron job"); err != nil {
		return "", "", err
	}
	return container, name, nil
}

// cronJSON is the job's wire shape with its last result.
func (s *Server) cronJSON(ctx context.Context, j *store.CronJob) (types.CronJob, error) {
	last, err := s.cronStore.CronHistory(ctx, j.Container, j.Name, 0, 1)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return types.CronJob{}, err
	}
	var lr *store.CronResult
	if len(last) > 0 {
		lr = last[0]
	}
	out := s.cron.Record(j, lr, s.now())
	if out.Token != "" {
		// A record shows no token wider than the webtask's own: a job
		// token that is not bound to this webtask (a tenant or master
		// token the job was given) stays in the store.
		if c, _, err := token.ParseUnverified(out.Token); err != nil || !boundTo(c, j.Container, j.Name) {
			out.Token = ""
		}
	}
	if j.Token == "" {
		// Bound to the webtask's current token: show that one's expiry.
		if w, err := s.store.GetWebtask(ctx, j.Container, j.Name); err == nil {
			out.ExpiresAt = s.cron.Record(&store.CronJob{Token: w.Token}, nil, s.now()).ExpiresAt
		}
	}
	return out, nil
}

// sendCronJob answers 200 with j's wire shape (cronJSON).
func (s *Server) sendCronJob(ctx context.Context, c echo.Context, j *store.CronJob) error {
	out, err := s.cronJSON(ctx, j)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// putCronJob is PUT /api/cron/{c}/{n}: create or replace the job that runs
// the named webtask {c}/{n} (which must exist).
func (s *Server) putCronJob(c echo.Context) error {
	container, name, err := s.cronParams(c)
	if err != nil {
		return err
	}
	var body putCronBody
	if err := s.bindJSON(c, &body); err != nil {
		return err
	}
	if body.Schedule == nil || strings.TrimSpace(*body.Schedule) == "" {
		return errdefs.Errorf(errdefs.ErrInvalid, "the `schedule` field is required")
	}
	j := &store.CronJob{Container: container, Name: name, Schedule: strings.TrimSpace(*body.Schedule),
		TZ: types.DefaultCronTZ, State: store.CronActive, Meta: body.Meta}
	if body.TZ != nil && *body.TZ != "" {
		j.TZ = *body.TZ
	}
	if body.State != nil {
		if j.State, err = cronState(*body.State); err != nil {
			return err
		}
	}
	if err := s.cron.Validate(j.Schedule, j.TZ); err != nil {
		return err
	}
	if body.Token != nil && *body.Token != "" {
		tok, err := s.verifier.Verify(*body.Token, s.now())
		if err != nil {
			return errdefs.Errorf(errdefs.ErrInvalid, "invalid job token: %s", err.Error())
		}
		if !tok.AllowsContainer(container) {
			return errdefs.Errorf(errdefs.ErrInvalid, "the job token is not valid for container `%s`", container)
		}
		j.Token = *body.Token
	}
	ctx := c.Request().Context()
	stored, err := s.cronStore.PutCronJob(ctx, j)
	if err != nil {
		return err
	}
	if err := s.cron.Put(stored); err != nil {
		return err // parsed above; not expected
	}
	return s.sendCronJob(ctx, c, stored)
}

func cronState(v string) (string, error) {
	switch v {
	case store.CronActive, store.CronInactive:
		return v, nil
	}
	return "", errdefs.Errorf(errdefs.ErrInvalid, "the `state` field must be `active` or `inactive`")
}

// getCronJob is GET /api/cron/{c}/{n}.
func (s *Server) getCronJob(c echo.Context) error {
	container, name, err := s.cronParams(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	j, err := s.cronStore.GetCronJob(ctx, container, name)
	if err != nil {
		return err
	}
	return s.sendCronJob(ctx, c, j)
}

// deleteCronJob is DELETE /api/cron/{c}/{n}: 204; the webtask and its token
// stay.
func (s *Server) deleteCronJob(c echo.Context) error {
	container, name, err := s.cronParams(c)
	if err != nil {
		return err
	}
	if err := s.cronStore.DeleteCronJob(c.Request().Context(), container, name); err != nil {
		return err
	}
	s.cron.Remove(container, name)
	return c.NoContent(http.StatusNoContent)
}

// setCronJobState is PUT /api/cron/{c}/{n}/state with {"state": ...}.
func (s *Server) setCronJobState(c echo.Context) error {
	container, name, err := s.cronParams(c)
	if err != nil {
		return err
	}
	var body struct {
		State *string `json:"state"`
	}
	if err := s.bindJSON(c, &body); err != nil {
		return err
	}
	if body.State == nil {
		return errdefs.Errorf(errdefs.ErrInvalid, "the `state` field is required")
	}
	state, err := cronState(*body.State)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	j, err := s.cronStore.SetCronJobState(ctx, container, name, state)
	if err != nil {
		return err
	}
	if err := s.cron.Put(j); err != nil {
		return err
	}
	return s.sendCronJob(ctx, c, j)
}

// listCronJobs is GET /api/cron/{c}?offset=&limit=&meta=k:v...
func (s *Server) listCronJobs(c echo.Context) error {
	_, container, err := s.containerParam(c)
	if err != nil {
		return err
	}
	q, err := parseListQuery(c)
	if err != nil {
		return err
	}
	if q.Empty {
		return c.JSON(http.StatusOK, []types.CronJob{})
	}
	o := store.CronListOptions{Container: container, Offset: q.Offset, Limit: q.Limit, Meta: q.Meta}
	ctx := c.Request().Context()
	jobs, err := s.cronStore.ListCronJobs(ctx, o)
	if err != nil {
		return err
	}
	out := make([]types.CronJob, 0, len(jobs))
	for _, j := range jobs {
		rec, err := s.cronJSON(ctx, j)
		if err != nil {
			return err
		}
		out = append(out, rec)
	}
	return c.JSON(http.StatusOK, out)
}

// cronHistory is GET /api/cron/{c}/{n}/history?offset=&limit=: newest first.
func (s *Server) cronHistory(c echo.Context) error {
	container, name, err := s.cronParams(c)
	if err != nil {
		return err
	}
	offset, limit, err := pageParams(c, store.CronHistoryKeep)
	if err != nil {
		return err
	}
	if c.QueryParam("limit") == "" {
		limit = defaultHistoryLimit
	}
	rs, err := s.cronStore.CronHistory(c.Request().Context(), container, name, offset, limit)
	if err != nil {
		return err
	}
	out := make([]types.CronResult, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Wire())
	}
	return c.JSON(http.StatusOK, out)
}

// maxCronPreview caps ?count of the next-runs preview.
const maxCronPreview = 20

// cronNext is GET /api/cron/{c}/{n}/next?schedule=&tz=&count=: the next run
// times of the given schedule (the editor's preview before saving), or of
// the stored job's when schedule is absent. {"next": [RFC 3339 times in tz]}.
func (s *Server) cronNext(c echo.Context) error {
	container, name, err := s.cronParams(c)
	if err != nil {
		return err
	}
	count := 5
	if v := c.QueryParam("count"); v != "" {
		if count, err = strconv.Atoi(v); err != nil || count < 1 || count > maxCronPreview {
			return errdefs.Errorf(errdefs.ErrInvalid, "count must be an integer from 1 to %d", maxCronPreview)
		}
	}
	schedule, tz := c.QueryParam("schedule"), c.QueryParam("tz")
	if schedule == "" {
		j, err := s.cronStore.GetCronJob(c.Request().Context(), container, name)
		if err != nil {
			return err
		}
		schedule, tz = j.Schedule, j.TZ
	}
	if tz == "" {
		tz = types.DefaultCronTZ
	}
	times, err := s.cron.Next(schedule, tz, s.now(), count)
	if err != nil {
		return err
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return errdefs.Errorf(errdefs.ErrInvalid, "unknown time zone %q", tz)
	}
	out := make([]string, len(times))
	for i, t := range times {
		out[i] = t.In(loc).Format(time.RFC3339)
	}
	return c.JSON(http.StatusOK, map[string]any{"schedule": schedule, "tz": tz, "next": out})
}
