package types

import "time"

// DefaultCronTZ is the time zone of cron jobs created without one.
const DefaultCronTZ = "UTC"

// CronJob is the wire shape of a cron job (reference §1.4): the API's
// answers and the body POSTed to the webtask on each run. wt-cli prints
// results[0].type, results[0].completed_at, next_available_at and
// expires_at.
type CronJob struct {
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
	Results    []CronResult `json:"results"`
	LastResult *CronResult  `json:"last_result,omitempty"`
}

// CronResult is the wire shape of one run (GET …/history).
type CronResult struct {
	ScheduledAt time.Time         `json:"scheduled_at"`
	StartedAt   time.Time         `json:"started_at"`
	CompletedAt time.Time         `json:"completed_at"`
	Type        string            `json:"type"`
	StatusCode  int               `json:"statusCode"`
	Body        string            `json:"body"`
	Headers     map[string]string `json:"headers"`
}
