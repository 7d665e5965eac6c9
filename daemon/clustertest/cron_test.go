package clustertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webtaskd/webtaskd/daemon/daemontest"
)

// cronJobs is the number of jobs of the cron scenario.
const cronJobs = 10

// cronScenario is issue 12's scenario 3 on real minute boundaries: 10 jobs
// run every minute; two consecutive ticks after the jobs were created are
// counted, and the member that won most of the first one's claims is
// SIGKILLed before the second: exactly 20 results, one per job and tick.
// startCron creates the jobs first thing; finish runs last in TestCluster
// (it kills a member), so that the other scenarios run meanwhile.
type cronScenario struct {
	c       *Cluster
	created time.Time
}

func startCron(t *testing.T, c *Cluster) *cronScenario {
	for j := range cronJobs {
		name := fmt.Sprintf("j%d", j)
		Must(t, 200, "PUT", c.LB+"/api/webtask/cronc/"+name, c.Master, map[string]any{
			"code": `module.exports = function (ctx, cb) { cb(null, { ran: true }); };`,
		})
		Must(t, 200, "PUT", c.LB+"/api/cron/cronc/"+name, c.Master, map[string]any{"schedule": "* * * * *", "tz": "UTC"})
	}
	return &cronScenario{c: c, created: time.Now()}
}

func (s *cronScenario) finish(t *testing.T) {
	c := s.c
	// The first tick counted: the latest one that has passed, if every
	// member had the jobs by then (5 s) and there is time left to kill
	// its winner before the next; else the next one.
	first := time.Now().Truncate(time.Minute)
	if first.Before(s.created.Add(5*time.Second)) || time.Until(first.Add(time.Minute)) < 15*time.Second {
		first = first.Add(time.Minute)
	}
	second := first.Add(time.Minute)
	results := func(tick time.Time) map[string]int {
		return countBy(t, c.DSN, `SELECT name, count(*) FROM cron_results WHERE container = 'cronc' AND scheduled_at = $1 GROUP BY name`, tick.UnixNano())
	}
	waitTick := func(tick time.Time) {
		t.Helper()
		daemontest.WaitFor(t, fmt.Sprintf("the %d results of the tick at %s", cronJobs, tick.Format(time.TimeOnly)),
			time.Until(tick)+45*time.Second, func() bool { return len(results(tick)) == cronJobs })
	}
	waitTick(first)
	// The claimers ran the jobs through HAProxy: all on the container's
	// home member, wherever they were claimed.
	servedBy := countBy(t, c.DSN, `SELECT (headers::jsonb)->>'x-wt-node', count(*) FROM cron_results
		WHERE container = 'cronc' AND scheduled_at = $1 GROUP BY 1`, first.UnixNano())
	if len(servedBy) != 1 {
		t.Errorf("the runs of one container's jobs were served by %v, want one member (its home, through --cluster-url)", servedBy)
	}
	claims := countBy(t, c.DSN, `SELECT node, count(*) FROM cron_claims WHERE container = 'cronc' AND tick = $1 GROUP BY node`, first.UnixNano())
	winner := ""
	for node, n := range claims {
		if winner == "" || n > claims[winner] {
			winner = node
		}
	}
	t.Logf("claims of the tick at %s per member: %v, runs served by %v; killing %s", first.Format(time.TimeOnly), claims, servedBy, winner)
	if time.Until(second) < time.Second {
		t.Fatalf("the first tick's results came too late to kill its winner before the second tick")
	}
	c.Node(winner).Kill(t)
	waitTick(second)
	total := 0
	for _, tick := range []time.Time{first, second} {
		for name, n := range results(tick) {
			if n != 1 {
				t.Errorf("job %s ran %d times at %s, want once", name, n, tick.Format(time.TimeOnly))
			}
			total += n
		}
	}
	if total != 2*cronJobs {
		t.Errorf("%d results over the two ticks, want exactly %d", total, 2*cronJobs)
	}
	if n := countBy(t, c.DSN, `SELECT node, count(*) FROM cron_claims WHERE container = 'cronc' AND tick = $1 GROUP BY node`, second.UnixNano())[winner]; n != 0 {
		t.Errorf("the killed member %s claimed %d runs of the second tick", winner, n)
	}
}

// countBy runs a query of (key, count) rows and returns them as a map.
func countBy(t *testing.T, dsn, sql string, args ...any) map[string]int {
	t.Helper()
	out := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pgQuery(ctx, t, dsn, sql, func(r pgx.Rows) error {
		var k string
		var n int
		err := r.Scan(&k, &n)
		out[k] = n
		return err
	}, args...)
	return out
}
