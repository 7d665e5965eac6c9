package clientstest

import (
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// cronWait bounds the wait for a `* * * * *` job's first run: it fires at
// the next minute boundary (at most 60 s away), plus a sandbox boot.
const cronWait = 70 * time.Second

// TestCronEveryMinute: two `* * * * *` jobs, one whose webtask answers and
// one whose webtask throws, created before a daemon restart, each record a
// run within 70 s of the restart (jobs reload on start): success with the
// job record POSTed to the webtask, and error with status 500. It needs no
// npm and runs in parallel with the client tests (it mostly waits for the
// minute boundary).
func TestCronEveryMinute(t *testing.T) {
	t.Parallel()
	RequireRoot(t)
	env, cfg := startDaemon(t, "")
	const c = "cronc"
	// pb 1: the webtask reads the POSTed job record as ctx.body.
	for name, code := range map[string]string{
		"ok":   `module.exports = (ctx, cb) => cb(null, { got: ctx.body && ctx.body.name, schedule: ctx.body && ctx.body.schedule, auth: !!ctx.headers.authorization });`,
		"boom": `module.exports = (ctx, cb) => { throw new Error('cron boom'); };`,
	} {
		r := env.Call("POST", "/api/tokens/issue", env.Master, map[string]any{"ten": c, "jtn": name, "code": code, "pb": 1})
		MustStatus(t, r, 200, "issue "+name)
	}
	MustStatus(t, env.Call("PUT", "/api/cron/"+c+"/ok", env.Master, map[string]any{"schedule": "* * * * *"}), 200, "PUT cron ok")
	MustStatus(t, env.Call("PUT", "/api/cron/"+c+"/boom", env.Master, map[string]any{"schedule": "* * * * *", "tz": "America/New_York"}), 200, "PUT cron boom")

	// Restart on the same data: the scheduler reloads both jobs.
	env.Stop()
	env = Start(t, cfg)
	restarted := time.Now()

	history := func(name string) []types.CronResult {
		r := env.Call("GET", "/api/cron/"+c+"/"+name+"/history", env.Master, nil)
		MustStatus(t, r, 200, "history "+name)
		var h []types.CronResult
		r.JSON(t, &h)
		return h
	}
	WaitFor(t, "a run of both `* * * * *` jobs", cronWait, func() bool {
		return len(history("ok")) > 0 && len(history("boom")) > 0
	})
	t.Logf("first runs recorded %s after the restart", time.Since(restarted).Round(time.Second))

	ok := history("ok")[0]
	if ok.Type != "success" || ok.StatusCode != 200 || !strings.Contains(ok.Body, `"got":"ok"`) ||
		!strings.Contains(ok.Body, `"schedule":"* * * * *"`) || !strings.Contains(ok.Body, `"auth":true`) {
		t.Fatalf("ok run = %+v", ok)
	}
	if ok.ScheduledAt.Second() != 0 || ok.StartedAt.Before(ok.ScheduledAt) || ok.CompletedAt.Before(ok.StartedAt) {
		t.Fatalf("ok run times: scheduled %v started %v completed %v (want a minute boundary, in order)", ok.ScheduledAt, ok.StartedAt, ok.CompletedAt)
	}
	boom := history("boom")[0]
	if boom.Type != "error" || boom.StatusCode != 500 || !strings.Contains(boom.Body, "cron boom") {
		t.Fatalf("boom run = %+v", boom)
	}

	var job types.CronJob
	r := env.Call("GET", "/api/cron/"+c+"/boom", env.Master, nil)
	MustStatus(t, r, 200, "GET cron boom")
	r.JSON(t, &job)
	if job.RunCount < 1 || job.ErrorCount < 1 || len(job.Results) != 1 || job.Results[0].Type != "error" || job.TZ != "America/New_York" {
		t.Fatalf("boom job = %+v", job)
	}
}
