package api

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/daemon/cron"
	"github.com/webtaskd/webtaskd/sandbox/agent"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/token"
)

// newCronEnv is an env over the real store with its cron scheduler
// running.
func newCronEnv(t *testing.T) (*env, *store.Store, *cron.Scheduler) {
	t.Helper()
	e := buildEnv(t, envOptions{realStore: true})
	if err := e.cron.Start(t.Context(), e.h, "wt.example"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.cron.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return e, e.st, e.cron
}

// deleteUnschedules DELETEs target (the job test/hello or its webtask) as
// the tenant and checks the answer, 204, and that the job is then neither
// scheduled nor found.
func deleteUnschedules(t *testing.T, e *env, sch *cron.Scheduler, target string) {
	t.Helper()
	if w := e.do("DELETE", target, e.tenant, ""); w.Code != 204 {
		t.Fatalf("DELETE %s: %d %s", target, w.Code, w.Body)
	}
	if sch.Scheduled("test", "hello") {
		t.Fatalf("the job stays scheduled after DELETE %s", target)
	}
	wantError(t, e.do("GET", "/api/cron/test/hello", e.tenant, ""), 404, "")
}

func TestCronRoutes(t *testing.T) {
	e, st, sch := newCronEnv(t)
	w := e.do("POST", "/api/tokens/issue", e.tenant, wtCreateBody)
	if w.Code != 200 {
		t.Fatalf("issue: %d %s", w.Code, w.Body)
	}
	wtToken := w.Body.String()

	// wt cron create's PUT (keys in wt's order).
	w = e.do("PUT", "/api/cron/test/hello", e.tenant,
		`{"schedule":"*/10 * * * *","token":"`+wtToken+`","state":"active","meta":{"team":"a"},"tz":"Europe/Paris"}`)
	if w.Code != 200 {
		t.Fatalf("PUT cron: %d %s", w.Code, w.Body)
	}
	job := decode[types.CronJob](t, w)
	if job.Name != "hello" || job.Container != "test" || job.State != "active" || job.TZ != "Europe/Paris" ||
		job.Meta["team"] != "a" || job.Token != wtToken || job.NextAvailableAt == nil || len(job.Results) != 0 {
		t.Fatalf("job = %+v", job)
	}
	if !sch.Scheduled("test", "hello") {
		t.Fatal("PUT did not schedule the job")
	}

	// A run goes through the API's run route to the runner.
	if err := sch.RunNow("test", "hello"); err != nil {
		t.Fatal(err)
	}
	req := e.runner.last(t)
	if req.Method != "POST" || req.URL != "/api/run/test/hello" || req.Name != "hello" {
		t.Fatalf("run request = %+v", req)
	}
	if got := req.Headers["authorization"]; len(got) != 1 || got[0] != "Bearer "+wtToken {
		t.Fatalf("authorization = %v", got)
	}
	var posted types.CronJob
	if err := json.Unmarshal(req.Body, &posted); err != nil || posted.Name != "hello" || posted.Schedule != "*/10 * * * *" || posted.Token != "" {
		t.Fatalf("posted body = %s (%v)", req.Body, err)
	}

	// The run shows in the job and its history.
	job = decode[types.CronJob](t, e.do("GET", "/api/cron/test/hello", e.tenant, ""))
	if job.RunCount != 1 || len(job.Results) != 1 || job.Results[0].Type != "success" || job.Results[0].StatusCode != 200 || job.LastScheduledAt == nil {
		t.Fatalf("job after a run = %+v", job)
	}
	e.runner.mu.Lock()
	e.runner.resp = &agent.Response{Status: 500, Body: []byte(`{"code":500,"error":"Script generated an unhandled synchronous exception."}`)}
	e.runner.mu.Unlock()
	if err := sch.RunNow("test", "hello"); err != nil {
		t.Fatal(err)
	}
	hist := decode[[]types.CronResult](t, e.do("GET", "/api/cron/test/hello/history?limit=20", e.tenant, ""))
	if len(hist) != 2 || hist[0].Type != "error" || hist[0].StatusCode != 500 || hist[1].Type != "success" {
		t.Fatalf("history = %+v", hist)
	}
	if h := decode[[]types.CronResult](t, e.do("GET", "/api/cron/test/hello/history?offset=1&limit=1", e.tenant, "")); len(h) != 1 || h[0].Type != "success" {
		t.Fatalf("history page = %+v", h)
	}

	// List with meta filters.
	if l := decode[[]types.CronJob](t, e.do("GET", "/api/cron/test?meta=team:a", e.tenant, "")); len(l) != 1 || l[0].ErrorCount != 1 {
		t.Fatalf("list team:a = %+v", l)
	}
	if l := decode[[]types.CronJob](t, e.do("GET", "/api/cron/test?meta=team:b", e.tenant, "")); len(l) != 0 {
		t.Fatalf("list team:b = %+v", l)
	}

	// State.
	job = decode[types.CronJob](t, e.do("PUT", "/api/cron/test/hello/state", e.tenant, `{"state":"inactive"}`))
	if job.State != "inactive" || sch.Scheduled("test", "hello") {
		t.Fatalf("inactive job = %+v, scheduled %v", job, sch.Scheduled("test", "hello"))
	}
	job = decode[types.CronJob](t, e.do("PUT", "/api/cron/test/hello/state", e.tenant, `{"state":"active"}`))
	if job.State != "active" || !sch.Scheduled("test", "hello") {
		t.Fatalf("re-activated job = %+v", job)
	}

	// Delete the job: 204, unscheduled, 404 afterwards; the webtask stays.
	deleteUnschedules(t, e, sch, "/api/cron/test/hello")
	wantError(t, e.do("DELETE", "/api/cron/test/hello", e.tenant, ""), 404, "")
	wantError(t, e.do("GET", "/api/cron/test/hello/history", e.tenant, ""), 404, "")
	if _, err := st.GetWebtask(t.Context(), "test", "hello"); err != nil {
		t.Fatalf("deleting the job deleted the webtask: %v", err)
	}

	// v2 shape: no token binds the job to the webtask's token. Deleting
	// the webtask deletes the job and unschedules it.
	if w := e.do("PUT", "/api/cron/test/hello", e.tenant, `{"schedule":"* * * * *"}`); w.Code != 200 {
		t.Fatalf("PUT cron without token: %d %s", w.Code, w.Body)
	}
	if job := decode[types.CronJob](t, e.do("GET", "/api/cron/test/hello", e.tenant, "")); job.TZ != "UTC" || job.State != "active" || job.Token != "" {
		t.Fatalf("defaults = %+v", job)
	}
	deleteUnschedules(t, e, sch, "/api/webtask/test/hello")
}

func TestCronBadInput(t *testing.T) {
	e, st, sch := newCronEnv(t)
	if w := e.do("POST", "/api/tokens/issue", e.tenant, wtCreateBody); w.Code != 200 {
		t.Fatalf("issue: %d %s", w.Code, w.Body)
	}
	other := e.sign(&token.Claims{Ten: "other", Dd: intp(1)})
	expired := e.sign(&token.Claims{Ten: "test", Exp: time.Now().Add(-time.Hour).Unix()})
	cases := []struct {
		name, method, path, tok, body string
		status                        int
	}{
		{"no auth", "PUT", "/api/cron/test/hello", "", `{"schedule":"* * * * *"}`, 403},
		{"foreign tenant", "PUT", "/api/cron/test/hello", other, `{"schedule":"* * * * *"}`, 403},
		{"foreign tenant list", "GET", "/api/cron/test", other, "", 403},
		{"foreign tenant history", "GET", "/api/cron/test/hello/history", other, "", 403},
		{"no schedule", "PUT", "/api/cron/test/hello", e.tenant, `{}`, 400},
		{"bad schedule", "PUT", "/api/cron/test/hello", e.tenant, `{"schedule":"every minute"}`, 400},
		{"six fields", "PUT", "/api/cron/test/hello", e.tenant, `{"schedule":"0 * * * * *"}`, 400},
		{"bad minute", "PUT", "/api/cron/test/hello", e.tenant, `{"schedule":"61 * * * *"}`, 400},
		{"bad tz", "PUT", "/api/cron/test/hello", e.tenant, `{"schedule":"* * * * *","tz":"Mars/Base"}`, 400},
		{"bad state", "PUT", "/api/cron/test/hello", e.tenant, `{"schedule":"* * * * *","state":"paused"}`, 400},
		{"unknown field", "PUT", "/api/cron/test/hello", e.tenant, `{"schedule":"* * * * *","when":"now"}`, 400},
		{"not json", "PUT", "/api/cron/test/hello", e.tenant, `schedule=* * * * *`, 400},
		{"bad token", "PUT", "/api/cron/test/hello", e.tenant, `{"schedule":"* * * * *","token":"x.y.z"}`, 400},
		{"expired token", "PUT", "/api/cron/test/hello", e.tenant, `{"schedule":"* * * * *","token":"` + expired + `"}`, 400},
		{"token for another container", "PUT", "/api/cron/test/hello", e.tenant, `{"schedule":"* * * * *","token":"` + other + `"}`, 400},
		{"no such webtask", "PUT", "/api/cron/test/nope", e.tenant, `{"schedule":"* * * * *"}`, 404},
		{"bad name", "PUT", "/api/cron/test/a%20b", e.tenant, `{"schedule":"* * * * *"}`, 400},
		{"state of missing job", "PUT", "/api/cron/test/hello/state", e.tenant, `{"state":"active"}`, 404},
		{"state missing", "PUT", "/api/cron/test/hello/state", e.tenant, `{}`, 400},
		{"bad offset", "GET", "/api/cron/test?offset=-1", e.tenant, "", 400},
		{"bad limit", "GET", "/api/cron/test?limit=x", e.tenant, "", 400},
		{"bad meta filter", "GET", "/api/cron/test?meta=nocolon", e.tenant, "", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, e.do(c.method, c.path, c.tok, c.body), c.status, "")
			if jobs, _ := st.ListCronJobs(t.Context(), store.CronListOptions{}); len(jobs) != 0 {
				t.Fatalf("a refused request stored a job: %+v", jobs[0])
			}
			if sch.Scheduled("test", "hello") || sch.Scheduled("test", "nope") {
				t.Fatal("a refused request scheduled a job")
			}
		})
	}
	w := e.do("PUT", "/api/cron/test/hello", e.tenant, `{"schedule":"bad"}`)
	if !strings.Contains(w.Body.String(), "schedule") {
		t.Fatalf("the 400 should say what is wrong: %s", w.Body)
	}
}
