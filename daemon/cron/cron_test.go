package cron

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/store"
)

func TestParse(t *testing.T) {
	ok := []struct{ sched, tz string }{
		{"* * * * *", ""}, {"*/5 9-17 * * 1-5", "Europe/Paris"}, {"1-59/10 * * * *", "UTC"},
		{"41 */1 * * *", "America/New_York"}, {"@hourly", "UTC"},
	}
	for _, c := range ok {
		if _, err := Parse(c.sched, c.tz); err != nil {
			t.Errorf("Parse(%q, %q): %v", c.sched, c.tz, err)
		}
	}
	bad := []struct{ sched, tz string }{
		{"", "UTC"}, {"* * * *", "UTC"}, {"* * * * * *", "UTC"}, {"61 * * * *", "UTC"},
		{"* * * * *", "Mars/Olympus"}, {"* * * * *", "Local"}, {"* * * * *", "UTC x"},
		{"CRON_TZ=UTC * * * * *", "UTC"}, {"TZ=UTC * * * * *", ""},
	}
	for _, c := range bad {
		if _, err := Parse(c.sched, c.tz); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q, %q) = %v, want ErrInvalid", c.sched, c.tz, err)
		}
	}
	// The zone applies: 09:00 in Paris is 08:00 UTC in winter.
	s, _ := Parse("0 9 * * *", "Europe/Paris")
	next := s.Next(time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)).UTC()
	if want := time.Date(2026, 1, 11, 8, 0, 0, 0, time.UTC); !next.Equal(want) {
		t.Fatalf("next run %v, want %v", next, want)
	}
}

// fakeStore is an in-memory Store.
type fakeStore struct {
	mu      sync.Mutex
	jobs    map[key]*store.CronJob
	tasks   map[key]*store.Webtask
	results map[key][]*store.CronResult
	added   chan struct{}
}

func newFakeStore() *fakeStore {
	return &fakeStore{jobs: map[key]*store.CronJob{}, tasks: map[key]*store.Webtask{},
		results: map[key][]*store.CronResult{}, added: make(chan struct{}, 100)}
}

func (f *fakeStore) put(j *store.CronJob) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[key{j.Container, j.Name}] = j
	f.tasks[key{j.Container, j.Name}] = &store.Webtask{Container: j.Container, Name: j.Name, Token: "webtask-token"}
}

func (f *fakeStore) ListCronJobs(_ context.Context, o store.CronListOptions) ([]*store.CronJob, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*store.CronJob
	for _, j := range f.jobs {
		if o.State == "" || j.State == o.State {
			out = append(out, j)
		}
	}
	return out, nil
}

func (f *fakeStore) GetCronJob(_ context.Context, c, n string) (*store.CronJob, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if j, ok := f.jobs[key{c, n}]; ok {
		return j, nil
	}
	return nil, store.ErrNotFound
}

func (f *fakeStore) GetWebtask(_ context.Context, c, n string) (*store.Webtask, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if w, ok := f.tasks[key{c, n}]; ok {
		return w, nil
	}
	return nil, store.ErrNotFound
}

func (f *fakeStore) AddCronResult(_ context.Context, c, n string, r *store.CronResult) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.jobs[key{c, n}]; !ok {
		return store.ErrNotFound
	}
	f.results[key{c, n}] = append(f.results[key{c, n}], r)
	f.added <- struct{}{}
	return nil
}

func (f *fakeStore) resultsOf(c, n string) []*store.CronResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*store.CronResult(nil), f.results[key{c, n}]...)
}

func newScheduler(t *testing.T, st Store, h http.Handler) *Scheduler {
	t.Helper()
	s, err := New(Config{Store: st, Host: "wt.example", MaxResultBodyBytes: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background(), h, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestRunPostsTheJobRecordAndRecordsTheOutcome(t *testing.T) {
	st := newFakeStore()
	st.put(&store.CronJob{Container: "c", Name: "ok", Schedule: "0 0 1 1 *", TZ: "UTC", State: store.CronActive, Token: "job-token", Meta: map[string]string{"k": "v"}})
	st.put(&store.CronJob{Container: "c", Name: "boom", Schedule: "0 0 1 1 *", TZ: "UTC", State: store.CronActive})
	type seen struct {
		method, uri, host, auth, ctype string
		body                           types.CronJob
	}
	var mu sync.Mutex
	var calls []seen
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var j types.CronJob
		if err := json.Unmarshal(raw, &j); err != nil {
			t.Errorf("run body is not a job record: %v: %s", err, raw)
		}
		mu.Lock()
		calls = append(calls, seen{r.Method, r.RequestURI, r.Host, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), j})
		mu.Unlock()
		w.Header().Set("X-Auth0-Thing", `{"a":1}`)
		if strings.HasSuffix(r.RequestURI, "/boom") {
			w.WriteHeader(500)
			fmt.Fprint(w, `{"code":500,"error":"Script generated an unhandled synchronous exception."}`)
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	})
	s := newScheduler(t, st, h)
	if !s.Scheduled("c", "ok") || !s.Scheduled("c", "boom") {
		t.Fatal("Start did not schedule the stored active jobs")
	}
	if err := s.RunNow("c", "ok"); err != nil {
		t.Fatal(err)
	}
	if err := s.RunNow("c", "boom"); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 {
		t.Fatalf("%d calls, want 2", len(calls))
	}
	c0 := calls[0]
	if c0.method != "POST" || c0.uri != "/api/run/c/ok" || c0.host != "wt.example" || c0.auth != "Bearer job-token" ||
		c0.ctype != "application/json" || c0.body.Name != "ok" || c0.body.Meta["k"] != "v" || c0.body.Token != "" {
		t.Fatalf("run request = %+v", c0)
	}
	if calls[1].auth != "Bearer webtask-token" {
		t.Fatalf("a job without a token must send the webtask's: %q", calls[1].auth)
	}
	ok := st.resultsOf("c", "ok")
	if len(ok) != 1 || ok[0].Type != store.CronSuccess || ok[0].StatusCode != 200 || ok[0].Body != `{"ok":true}` ||
		ok[0].Headers["x-auth0-thing"] != `{"a":1}` || ok[0].CompletedAt.Before(ok[0].StartedAt) {
		t.Fatalf("ok result = %+v", ok)
	}
	boom := st.resultsOf("c", "boom")
	if len(boom) != 1 || boom[0].Type != store.CronError || boom[0].StatusCode != 500 || len(boom[0].Body) != 16 {
		t.Fatalf("boom result = %+v (body capped at 16 bytes)", boom)
	}
}

func TestARunningJobIsNotStartedTwice(t *testing.T) {
	st := newFakeStore()
	st.put(&store.CronJob{Container: "c", Name: "slow", Schedule: "0 0 1 1 *", TZ: "UTC", State: store.CronActive})
	entered, release := make(chan struct{}, 10), make(chan struct{})
	var mu sync.Mutex
	n := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		entered <- struct{}{}
		<-release
	})
	s := newScheduler(t, st, h)
	s.mu.Lock()
	r := &run{s: s, k: key{"c", "slow"}, id: s.entries[key{"c", "slow"}]}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { r.Run(); close(done) }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("first run never reached the webtask")
	}
	r.Run() // the next tick while the first run is going: skipped, returns at once
	if err := s.RunNow("c", "slow"); err == nil {
		t.Fatal("RunNow during a run must refuse")
	}
	close(release)
	<-done
	mu.Lock()
	calls := n
	mu.Unlock()
	if calls != 1 || len(st.resultsOf("c", "slow")) != 1 {
		t.Fatalf("%d calls and %d results, want 1 and 1", calls, len(st.resultsOf("c", "slow")))
	}
	// Once finished, the job runs again.
	if err := s.RunNow("c", "slow"); err != nil {
		t.Fatal(err)
	}
}

func TestPutRemoveAndDeletedJobs(t *testing.T) {
	st := newFakeStore()
	s := newScheduler(t, st, http.NotFoundHandler())
	j := &store.CronJob{Container: "c", Name: "j", Schedule: "* * * * *", TZ: "UTC", State: store.CronActive}
	st.put(j)
	if err := s.Put(j); err != nil || !s.Scheduled("c", "j") {
		t.Fatalf("Put active: %v, scheduled %v", err, s.Scheduled("c", "j"))
	}
	in := *j
	in.State = store.CronInactive
	if err := s.Put(&in); err != nil || s.Scheduled("c", "j") {
		t.Fatalf("Put inactive: %v, scheduled %v", err, s.Scheduled("c", "j"))
	}
	bad := *j
	bad.Schedule = "nope"
	if err := s.Put(&bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Put bad schedule: %v", err)
	}
	_ = s.Put(j)
	s.Remove("c", "j")
	if s.Scheduled("c", "j") {
		t.Fatal("Remove left the job scheduled")
	}
	// A job deleted behind the scheduler's back (with its webtask) is
	// unscheduled by its next run and records nothing.
	_ = s.Put(j)
	st.mu.Lock()
	delete(st.jobs, key{"c", "j"})
	st.mu.Unlock()
	if err := s.RunNow("c", "j"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("run of a deleted job: %v", err)
	}
	if s.Scheduled("c", "j") {
		t.Fatal("a deleted job stays scheduled")
	}
}

func TestStopCancelsRunsInFlightAndWaits(t *testing.T) {
	st := newFakeStore()
	// @every 1s: the tick comes soon; the run blocks until its request is
	// canceled by Stop.
	st.put(&store.CronJob{Container: "c", Name: "j", Schedule: "@every 1s", TZ: "UTC", State: store.CronActive})
	entered := make(chan struct{}, 10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done()
		w.WriteHeader(503)
	})
	s, err := New(Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background(), h, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the job never ran")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	res := st.resultsOf("c", "j")
	if len(res) != 1 || res[0].Type != store.CronError || res[0].StatusCode != 503 {
		t.Fatalf("results after Stop = %+v, want the canceled run recorded as an error", res)
	}
	if s.Put(&store.CronJob{Container: "c", Name: "x", Schedule: "* * * * *", State: store.CronActive}) != nil || s.Scheduled("c", "x") {
		t.Fatal("Put after Stop must do nothing")
	}
}

func TestRecordShape(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 30, 15, 0, time.UTC)
	j := &store.CronJob{Container: "c", Name: "j", Schedule: "*/10 * * * *", TZ: "UTC", State: store.CronActive, RunCount: 2}
	rec := Record(j, &store.CronResult{Type: store.CronError, StatusCode: 500, CompletedAt: now}, now)
	raw, _ := json.Marshal(rec)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	for _, k := range []string{"container", "name", "schedule", "tz", "state", "meta", "created_at", "next_available_at", "run_count", "error_count", "results"} {
		if _, ok := m[k]; !ok {
			t.Errorf("job JSON lacks %q: %s", k, raw)
		}
	}
	if rec.NextAvailableAt == nil || !rec.NextAvailableAt.Equal(time.Date(2026, 3, 1, 10, 40, 0, 0, time.UTC)) {
		t.Fatalf("next_available_at = %v", rec.NextAvailableAt)
	}
	if len(rec.Results) != 1 || rec.Results[0].Type != "error" {
		t.Fatalf("results = %+v", rec.Results)
	}
	if !strings.Contains(string(raw), `"statusCode":500`) {
		t.Fatalf("result JSON uses statusCode: %s", raw)
	}
}
