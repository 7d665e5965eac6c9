package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func putTestWebtask(t *testing.T, s *Store, container, name string) {
	t.Helper()
	if _, err := s.PutWebtask(context.Background(), &Webtask{Container: container, Name: name, Code: "module.exports = cb => cb()", Token: "tok"}); err != nil {
		t.Fatal(err)
	}
}

func TestCronJobNeedsItsWebtask(t *testing.T) { bothDialects(t, testCronJobNeedsItsWebtask) }

func testCronJobNeedsItsWebtask(t *testing.T) {
	s := openTestStore(t)
	_, err := s.PutCronJob(context.Background(), &CronJob{Container: "c", Name: "nope", Schedule: "* * * * *", TZ: "UTC", State: CronActive})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("PutCronJob without webtask: %v, want ErrNotFound", err)
	}
}

func TestCronJobRoundTripKeepsHistoryOnReplace(t *testing.T) {
	bothDialects(t, testCronJobRoundTripKeepsHistoryOnReplace)
}

func testCronJobRoundTripKeepsHistoryOnReplace(t *testing.T) {
	e, s := openTestEnv(t)
	ctx := context.Background()
	putTestWebtask(t, s, "c", "j")
	j, err := s.PutCronJob(ctx, &CronJob{Container: "c", Name: "j", Token: "T1", Schedule: "* * * * *", TZ: "UTC", State: CronActive, Meta: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	created := j.CreatedAt
	if j.Meta["k"] != "v" || j.Token != "T1" || j.RunCount != 0 || !j.LastScheduledAt.IsZero() {
		t.Fatalf("stored job = %+v", j)
	}
	at := e.clock.Now()
	if err := s.AddCronResult(ctx, "c", "j", &CronResult{ScheduledAt: at, StartedAt: at, CompletedAt: at, Type: CronError, StatusCode: 500, Body: "boom", Headers: map[string]string{"x-a": "1"}}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	j, err = s.PutCronJob(ctx, &CronJob{Container: "c", Name: "j", Token: "T2", Schedule: "*/5 * * * *", TZ: "Europe/Paris", State: CronInactive})
	if err != nil {
		t.Fatal(err)
	}
	if !j.CreatedAt.Equal(created) || j.RunCount != 1 || j.ErrorCount != 1 || j.Token != "T2" || j.TZ != "Europe/Paris" ||
		j.State != CronInactive || len(j.Meta) != 0 || !j.LastScheduledAt.Equal(at) {
		t.Fatalf("replaced job = %+v", j)
	}
	h, err := s.CronHistory(ctx, "c", "j", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 1 || h[0].Body != "boom" || h[0].StatusCode != 500 || h[0].Headers["x-a"] != "1" || !h[0].CompletedAt.Equal(at) {
		t.Fatalf("history after replace = %+v", h)
	}
	if j, err = s.SetCronJobState(ctx, "c", "j", CronActive); err != nil || j.State != CronActive {
		t.Fatalf("SetCronJobState = %+v, %v", j, err)
	}
	if _, err := s.SetCronJobState(ctx, "c", "nope", CronActive); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetCronJobState(missing) = %v", err)
	}
}

func TestCronHistoryKeepsTheNewest100(t *testing.T) {
	bothDialects(t, testCronHistoryKeepsTheNewest100)
}

func testCronHistoryKeepsTheNewest100(t *testing.T) {
	e, s := openTestEnv(t)
	ctx := context.Background()
	putTestWebtask(t, s, "c", "j")
	putTestWebtask(t, s, "c", "other")
	for _, n := range []string{"j", "other"} {
		if _, err := s.PutCronJob(ctx, &CronJob{Container: "c", Name: n, Schedule: "* * * * *", TZ: "UTC", State: CronActive}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddCronResult(ctx, "c", "other", &CronResult{Type: CronSuccess, Body: "other"}); err != nil {
		t.Fatal(err)
	}
	const runs = CronHistoryKeep + 30
	base := e.clock.Now()
	for i := 0; i < runs; i++ {
		at := base.Add(time.Duration(i) * time.Minute)
		if err := s.AddCronResult(ctx, "c", "j", &CronResult{ScheduledAt: at, StartedAt: at, CompletedAt: at, Type: CronSuccess, StatusCode: 200, Body: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := s.CronHistory(ctx, "c", "j", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != CronHistoryKeep {
		t.Fatalf("kept %d results, want %d", len(h), CronHistoryKeep)
	}
	if h[0].Body != fmt.Sprint(runs-1) || h[len(h)-1].Body != fmt.Sprint(runs-CronHistoryKeep) {
		t.Fatalf("history spans %s..%s, want newest first %d..%d", h[0].Body, h[len(h)-1].Body, runs-1, runs-CronHistoryKeep)
	}
	page, err := s.CronHistory(ctx, "c", "j", 10, 5)
	if err != nil || len(page) != 5 || page[0].Body != fmt.Sprint(runs-11) {
		t.Fatalf("page = %d results (first %v), %v", len(page), page, err)
	}
	j, _ := s.GetCronJob(ctx, "c", "j")
	if j.RunCount != runs {
		t.Fatalf("run_count %d, want %d (counts every run, not only the kept ones)", j.RunCount, runs)
	}
	// Trimming one job never touches another's history.
	if h, err := s.CronHistory(ctx, "c", "other", 0, 0); err != nil || len(h) != 1 {
		t.Fatalf("other job's history = %v, %v", h, err)
	}
}

func TestCronJobDeletedWithItsWebtask(t *testing.T) {
	bothDialects(t, testCronJobDeletedWithItsWebtask)
}

func testCronJobDeletedWithItsWebtask(t *testing.T) {
	e := newEnv(t)
	s := e.open(t)
	ctx := context.Background()
	putTestWebtask(t, s, "c", "j")
	if _, err := s.PutCronJob(ctx, &CronJob{Container: "c", Name: "j", Schedule: "* * * * *", TZ: "UTC", State: CronActive}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddCronResult(ctx, "c", "j", &CronResult{Type: CronSuccess}); err != nil {
		t.Fatal(err)
	}
	// Replacing the webtask (wt update) keeps the job.
	putTestWebtask(t, s, "c", "j")
	if _, err := s.GetCronJob(ctx, "c", "j"); err != nil {
		t.Fatalf("job after webtask update: %v", err)
	}
	if err := s.DeleteWebtask(ctx, "c", "j"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetCronJob(ctx, "c", "j"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("job after webtask delete: %v, want ErrNotFound", err)
	}
	var n int
	if err := s.db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM cron_results`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d results left after delete (%v)", n, err)
	}
	if err := s.AddCronResult(ctx, "c", "j", &CronResult{Type: CronSuccess}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("AddCronResult for deleted job: %v, want ErrNotFound", err)
	}
	s.Close()
	// Jobs survive a reopen (daemon restart).
	s = e.open(t)
	defer s.Close()
	putTestWebtask(t, s, "c", "k")
	if _, err := s.PutCronJob(ctx, &CronJob{Container: "c", Name: "k", Schedule: "0 9 * * 1", TZ: "UTC", State: CronActive, Meta: map[string]string{"team": "a"}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = e.open(t)
	list, err := s.ListCronJobs(ctx, CronListOptions{Meta: map[string]string{"team": "a"}})
	if err != nil || len(list) != 1 || list[0].Name != "k" || list[0].Schedule != "0 9 * * 1" {
		t.Fatalf("jobs after reopen = %+v, %v", list, err)
	}
	if list, _ := s.ListCronJobs(ctx, CronListOptions{Meta: map[string]string{"team": "b"}}); len(list) != 0 {
		t.Fatalf("meta filter team:b matched %d jobs", len(list))
	}
	if list, _ := s.ListCronJobs(ctx, CronListOptions{State: CronInactive}); len(list) != 0 {
		t.Fatalf("state filter inactive matched %d jobs", len(list))
	}
}
