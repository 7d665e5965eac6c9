package cron

import (
	"time"

	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/token"
)

// JobJSON is the wire shape of a cron job (reference §1.4): the API's
// answers and the body POSTed to the webtask on each run. wt-cli prints
// results[0].type, results[0].completed_at, next_available_at and
// expires_at.
type JobJSON struct {
	Container       string            `json:"container"`
	Name            string            `json:"name"`
	Token           string            `json:"token,omitempty"`
	Schedule        string            `json:"schedule"`
	TZ              string            `json:"tz"`
	State           string            `json:"state"`
	Meta            map[string]string `json:"meta"`
	CreatedAt       time.Time         `json:"created_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
	NextAvailableAt *time.Time        `json:"next_available_at,omitempty"`
	LastScheduledAt *time.Time        `json:"last_scheduled_at,omitempty"`
	ExpiresAt       *time.Time        `json:"expires_at,omitempty"`
	RunCount        int               `json:"run_count"`
	ErrorCount      int               `json:"error_count"`
	// Results holds the last result (newest first) when there is one.
	Results    []ResultJSON `json:"results"`
	LastResult *ResultJSON  `json:"last_result,omitempty"`
}

// ResultJSON is the wire shape of one run (GET …/history).
type ResultJSON struct {
	ScheduledAt time.Time         `json:"scheduled_at"`
	StartedAt   time.Time         `json:"started_at"`
	CompletedAt time.Time         `json:"completed_at"`
	Type        string            `json:"type"`
	StatusCode  int               `json:"statusCode"`
	Body        string            `json:"body"`
	Headers     map[string]string `json:"headers"`
}

// Result converts a stored result.
func Result(r *store.CronResult) ResultJSON {
	h := r.Headers
	if h == nil {
		h = map[string]string{}
	}
	return ResultJSON{
		ScheduledAt: r.ScheduledAt, StartedAt: r.StartedAt, CompletedAt: r.CompletedAt,
		Type: r.Type, StatusCode: r.StatusCode, Body: r.Body, Headers: h,
	}
}

// Record builds the wire shape of j with its last result (nil: none) at
// time now: next_available_at is the schedule's next tick after now, and
// expires_at the exp claim of the job's token, when it has one.
func Record(j *store.CronJob, last *store.CronResult, now time.Time) JobJSON {
	meta := j.Meta
	if meta == nil {
		meta = map[string]string{}
	}
	out := JobJSON{
		Container: j.Container, Name: j.Name, Token: j.Token,
		Schedule: j.Schedule, TZ: j.TZ, State: j.State, Meta: meta,
		CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt,
		RunCount: j.RunCount, ErrorCount: j.ErrorCount,
		Results: []ResultJSON{},
	}
	if sched, err := Parse(j.Schedule, j.TZ); err == nil {
		if next := sched.Next(now); !next.IsZero() {
			next = next.UTC()
			out.NextAvailableAt = &next
		}
	}
	if !j.LastScheduledAt.IsZero() {
		t := j.LastScheduledAt
		out.LastScheduledAt = &t
	}
	if j.Token != "" {
		if c, _, err := token.ParseUnverified(j.Token); err == nil && c.Exp > 0 {
			t := time.Unix(c.Exp, 0).UTC()
			out.ExpiresAt = &t
		}
	}
	if last != nil {
		r := Result(last)
		out.Results = []ResultJSON{r}
		out.LastResult = &r
	}
	return out
}
