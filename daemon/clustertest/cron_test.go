package clustertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webtaskd/webtaskd/daemon/daemontest"
)

// TestCronMinuteBoundaries: 10 jobs over two real minute boundaries, the
// member that won most of the first tick's claims SIGKILLed in between:
// exactly 20 results, one per job and tick (issue 12, scenario 3). It
// waits for real minutes, so it runs beside the other tests.
func TestCronMinuteBoundaries(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{})
	const jobs = 10
	for j := range jobs {
		name := fmt.Sprintf("j%d", j)
		Must(t, 200, "PUT", c.LB+"/api/webtask/cronc/"+name, c.Master, map[string]any{
			"code": `module.exports = function (ctx, cb) { cb(null, { ran: true }); };`,
		})
		Must(t, 200, "PUT", c.LB+"/api/cron/cronc/"+name, c.Master, map[string]any{"schedule": "* * * * *", "tz": "UTC"})
	}
	// The first tick counted comes after every member has the jobs (a
	// nearer one may run too: it is not counted).
	first := time.Now().Truncate(time.Minute).Add(time.Minute)
	if time.Until(first) < 5*time.Second {
		first = first.Add(time.Minute)
	}
	second := first.Add(time.Minute)
	results := func(tick time.Time) map[string]int {
		return countBy(t, c.DSN, `SELECT name, count(*) FROM cron_results WHERE container = 'cronc' AND scheduled_at = $1 GROUP BY name`, tick.UnixNano())
	}
	waitTick := func(tick time.Time) {
		t.Helper()
		daemontest.WaitFor(t, fmt.Sprintf("the %d results of the tick at %s", jobs, tick.Format(time.TimeOnly)),
			time.Until(tick)+45*time.Second, func() bool { return len(results(tick)) == jobs })
	}
	waitTick(first)
	// The member that claimed most of the first tick dies before the second.
	claims := countBy(t, c.DSN, `SELECT node, count(*) FROM cron_claims WHERE container = 'cronc' AND tick = $1 GROUP BY node`, first.UnixNano())
	winner := ""
	for node, n := range claims {
		if winner == "" || n > claims[winner] {
			winner = node
		}
	}
	t.Logf("claims of the first tick per member: %v; killing %s", claims, winner)
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
	if total != 2*jobs {
		t.Errorf("%d results over the two ticks, want exactly %d", total, 2*jobs)
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
