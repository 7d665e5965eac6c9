package cron

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/pgtest"
)

// TestClaimsExactlyOnceWithSkew: three members (schedulers, each with its
// own connection pool to one PostgreSQL store) fire 5 jobs × 300 simulated
// minute ticks (1,500) with clocks skewed by -25 s, 0 and +40 s, each
// firing a tick when its own clock reaches it, as robfig would: every
// tick runs exactly once, on one member (issue 12, scenario 3).
func TestClaimsExactlyOnceWithSkew(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	ctx := context.Background()
	const jobs, ticks = 5, 300
	skews := []time.Duration{-25 * time.Second, 0, 40 * time.Second}

	var mu sync.Mutex
	runs := map[string]int{} // job and tick (X-Wt-Cron-Tick) → runs
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		runs[r.URL.Path+" "+r.Header.Get(HeaderTick)]++
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	})
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var simMu sync.Mutex
	sim := base.Add(-time.Minute) // the simulated "real" time
	now := func() time.Time { simMu.Lock(); defer simMu.Unlock(); return sim }

	var members []*Scheduler
	for i, skew := range skews {
		st, err := store.Open(ctx, store.Options{DSN: dsn, KEK: kek})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if i == 0 {
			for j := range jobs {
				name := fmt.Sprintf("j%d", j)
				if _, err := st.PutWebtask(ctx, &store.Webtask{Container: "skew", Name: name, Code: "module.exports = cb => cb(null, 1)"}); err != nil {
					t.Fatal(err)
				}
				if _, err := st.PutCronJob(ctx, &store.CronJob{Container: "skew", Name: name, Schedule: "* * * * *", TZ: "UTC", State: store.CronActive}); err != nil {
					t.Fatal(err)
				}
			}
		}
		s, err := New(Config{
			Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Now:     func() time.Time { return now().Add(skew) },
			Cluster: &Cluster{Claims: st, Node: fmt.Sprintf("m%d", i)},
		})
		if err != nil {
			t.Fatal(err)
		}
		s.h = handler // runs in-process; the robfig clock is never started
		members = append(members, s)
	}
	sched, _ := Parse("* * * * *", "UTC")
	last := make([]time.Time, len(members)) // each member's last fired tick
	for i := range last {
		last[i] = base.Add(-time.Minute)
	}
	end := base.Add(ticks * time.Minute)
	for step := 0; ; step++ {
		simMu.Lock()
		sim = sim.Add(17 * time.Second) // not a divisor of a minute: the order of the members varies
		cur := sim
		simMu.Unlock()
		if cur.Add(skews[0]).After(end.Add(time.Minute)) {
			break
		}
		var wg sync.WaitGroup
		for i, s := range members {
			local := cur.Add(skews[i])
			wg.Add(1)
			go func() {
				defer wg.Done()
				for tick := sched.Next(last[i]); !tick.After(local) && tick.Before(end); tick = sched.Next(tick) {
					for j := range jobs {
						s.fire(key{"skew", fmt.Sprintf("j%d", j)}, tick, local)
					}
					last[i] = tick
				}
			}()
		}
		wg.Wait()
	}
	total := 0
	for tick := base; tick.Before(end); tick = tick.Add(time.Minute) {
		for j := range jobs {
			k := fmt.Sprintf("/api/run/skew/j%d %s", j, tick.Format(time.RFC3339Nano))
			if n := runs[k]; n != 1 {
				t.Errorf("%s ran %d times, want exactly once", k, n)
			}
			total++
		}
	}
	if len(runs) != total || total < 1500 {
		t.Errorf("%d distinct runs for %d ticks (want equal, at least 1,500)", len(runs), total)
	}
}
