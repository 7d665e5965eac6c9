package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// putCronJob stores webtask c/n and an active cron job for it.
func putCronJob(t *testing.T, s *Store, c, n string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.PutWebtask(ctx, sample(c, n)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutCronJob(ctx, &CronJob{Container: c, Name: n, Schedule: "* * * * *", TZ: "UTC", State: CronActive}); err != nil {
		t.Fatal(err)
	}
}

// TestCronTickClaimedExactlyOnce: goroutines of two stores on one database
// race to claim every tick of several jobs (with clocks that disagree:
// an injected clock per store); each (job, tick) has exactly one winner,
// whose result completes the claim; a tick already run cannot be claimed
// again.
func TestCronTickClaimedExactlyOnce(t *testing.T) { bothDialects(t, testCronTickClaimedExactlyOnce) }

func testCronTickClaimedExactlyOnce(t *testing.T) {
	e := newEnv(t)
	a := e.open(t)
	defer a.Close()
	// The second store's clock runs 7 s late.
	e2 := *e
	e2.clock = &fakeClock{t: e.clock.Now().Add(-7 * time.Second)}
	b := e2.open(t)
	defer b.Close()
	const jobs, ticks, perStore = 3, 60, 4
	for j := 0; j < jobs; j++ {
		putCronJob(t, a, "c", fmt.Sprintf("j%d", j))
	}
	ctx := context.Background()
	base := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	var wins [jobs][ticks]atomic.Int32
	for tick := 0; tick < ticks; tick++ {
		at := base.Add(time.Duration(tick) * time.Minute)
		var wg sync.WaitGroup
		for si, s := range []*Store{a, b} {
			for g := 0; g < perStore; g++ {
				for j := 0; j < jobs; j++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						name := fmt.Sprintf("j%d", j)
						ok, err := s.ClaimCronTick(ctx, "c", name, at, fmt.Sprintf("node%d", si), time.Minute)
						if err != nil {
							t.Errorf("claim: %v", err)
							return
						}
						if !ok {
							return
						}
						wins[j][tick].Add(1)
						if err := s.AddCronResult(ctx, "c", name, &CronResult{ScheduledAt: at, StartedAt: at, CompletedAt: at, Type: CronSuccess}); err != nil {
							t.Errorf("result: %v", err)
						}
					}()
				}
			}
		}
		wg.Wait()
	}
	for j := 0; j < jobs; j++ {
		for tick := 0; tick < ticks; tick++ {
			if n := wins[j][tick].Load(); n != 1 {
				t.Fatalf("job %d tick %d: %d winners, want 1", j, tick, n)
			}
		}
		job, err := a.GetCronJob(ctx, "c", fmt.Sprintf("j%d", j))
		if err != nil || job.RunCount != ticks || !job.LastScheduledAt.Equal(base.Add((ticks-1)*time.Minute)) {
			t.Fatalf("job %d: %+v, %v", j, job, err)
		}
	}
	// An old tick (a lagging daemon) is never claimed again.
	if ok, err := b.ClaimCronTick(ctx, "c", "j0", base, "late", time.Minute); ok || err != nil {
		t.Fatalf("re-claim of a run tick: %v, %v", ok, err)
	}
	// No job, no claim.
	if ok, err := a.ClaimCronTick(ctx, "c", "nope", base, "n", time.Minute); ok || err != nil {
		t.Fatalf("claim of a missing job: %v, %v", ok, err)
	}
}

// TestCronClaimExpires: a claim whose lease ends without a result is
// recorded once as an error (by whichever store expires it first), is not
// claimable again, and its late result is refused.
func TestCronClaimExpires(t *testing.T) { bothDialects(t, testCronClaimExpires) }

func testCronClaimExpires(t *testing.T) {
	e := newEnv(t)
	a := e.open(t)
	defer a.Close()
	b := e.open(t)
	defer b.Close()
	putCronJob(t, a, "c", "j")
	ctx := context.Background()
	tick := e.clock.Now().Truncate(time.Minute)
	if ok, err := a.ClaimCronTick(ctx, "c", "j", tick, "dead", 30*time.Second); !ok || err != nil {
		t.Fatalf("claim: %v, %v", ok, err)
	}
	// Not expired yet.
	if n, err := b.ExpireCronClaims(ctx, e.clock.Now().Add(10*time.Second)); n != 0 || err != nil {
		t.Fatalf("early expire: %d, %v", n, err)
	}
	later := e.clock.Now().Add(31 * time.Second)
	var wg sync.WaitGroup
	var total atomic.Int32
	for _, s := range []*Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := s.ExpireCronClaims(ctx, later)
			if err != nil {
				t.Error(err)
			}
			total.Add(int32(n))
		}()
	}
	wg.Wait()
	if total.Load() != 1 {
		t.Fatalf("expired %d claims, want 1", total.Load())
	}
	hist, err := a.CronHistory(ctx, "c", "j", 0, 0)
	if err != nil || len(hist) != 1 || hist[0].Type != CronError || !hist[0].ScheduledAt.Equal(tick) {
		t.Fatalf("history: %+v, %v", hist, err)
	}
	if ok, err := b.ClaimCronTick(ctx, "c", "j", tick, "other", time.Minute); ok || err != nil {
		t.Fatalf("expired tick claimed again: %v, %v", ok, err)
	}
	err = a.AddCronResult(ctx, "c", "j", &CronResult{ScheduledAt: tick, Type: CronSuccess})
	if !errors.Is(err, ErrClaimExpired) {
		t.Fatalf("late result: %v, want ErrClaimExpired", err)
	}
	if hist, _ := a.CronHistory(ctx, "c", "j", 0, 0); len(hist) != 1 {
		t.Fatalf("late result recorded: %d results", len(hist))
	}
}

// TestMembers: heartbeats list a member until it stops beating.
func TestMembers(t *testing.T) { bothDialects(t, testMembers) }

func testMembers(t *testing.T) {
	e := newEnv(t)
	s := e.open(t)
	defer s.Close()
	ctx := context.Background()
	start := e.clock.Now()
	for _, n := range []string{"b", "a"} {
		if err := s.Heartbeat(ctx, n, "http://"+n+":8721"); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(10 * time.Second)
	if err := s.Heartbeat(ctx, "a", "http://a:8722"); err != nil {
		t.Fatal(err)
	}
	ms, err := s.Members(ctx, 5*time.Second)
	if err != nil || len(ms) != 1 || ms[0].NodeID != "a" || ms[0].URL != "http://a:8722" || !ms[0].StartedAt.Equal(start) {
		t.Fatalf("members within 5s: %+v, %v", ms, err)
	}
	if ms, _ := s.Members(ctx, time.Minute); len(ms) != 2 || ms[0].NodeID != "a" || ms[1].NodeID != "b" {
		t.Fatalf("members within 1m: %+v", ms)
	}
}
