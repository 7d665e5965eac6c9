package cron

import (
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/token"
)

// Record builds the wire shape of j with its last result (nil: none) at
// time now: next_available_at is the schedule's next tick after now, and
// expires_at the exp claim of the job's token, when it has one.
func Record(j *store.CronJob, last *store.CronResult, now time.Time) types.CronJob {
	meta := j.Meta
	if meta == nil {
		meta = map[string]string{}
	}
	out := types.CronJob{
		Container: j.Container, Name: j.Name, Token: j.Token,
		Schedule: j.Schedule, TZ: j.TZ, State: j.State, Meta: meta,
		CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt,
		RunCount: j.RunCount, ErrorCount: j.ErrorCount,
		Results: []types.CronResult{},
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
		r := last.Wire()
		out.Results = []types.CronResult{r}
		out.LastResult = &r
	}
	return out
}
