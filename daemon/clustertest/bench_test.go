package clustertest

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// burnCode burns about 5 ms of CPU per call.
const burnCode = `module.exports = function (ctx, cb) {
  const end = process.hrtime.bigint() + 5000000n;
  let x = 0;
  while (process.hrtime.bigint() < end) x++;
  cb(null, { x: x > 0 });
};`

// BenchmarkCluster measures the cluster's figures for docs/PERFORMANCE.md
// (make bench-cluster; not a CI gate): the 3-vs-1 throughput of a webtask
// burning ~5 ms of CPU with each sandbox capped at half a CPU (three
// members behind HAProxy against one member called directly, alternating
// rounds), HAProxy against direct latency, and the revocation and
// invalidation latencies from one member to another (200 trials each).
// All on one machine: the ratio is reported, not promised.
func BenchmarkCluster(b *testing.B) {
	c := Start(b, Options{Env: []string{"WEBTASKD_CPUS=0.5", "WEBTASKD_MAX_CONCURRENCY=8"}})
	const containers = 30
	for i := range containers {
		Must(b, 200, "PUT", fmt.Sprintf("%s/api/webtask/burn%02d/burn", c.LB, i), c.Master, map[string]any{"code": burnCode})
	}
	a := c.Node("a")
	throughput := func(base string) float64 {
		var n atomic.Int64
		stop := time.Now().Add(8 * time.Second)
		var wg sync.WaitGroup
		for w := range 24 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; time.Now().Before(stop); i++ {
					if r, err := Get(fmt.Sprintf("%s/api/run/burn%02d/burn", base, i%containers), ""); err == nil && r.Status == 200 {
						n.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		return float64(n.Load()) / 8
	}
	// Warm every container on its home member and on a.
	for i := range containers {
		Must(b, 200, "GET", fmt.Sprintf("%s/api/run/burn%02d/burn", c.LB, i), "", nil)
		Must(b, 200, "GET", fmt.Sprintf("%s/api/run/burn%02d/burn", a.URL(), i), "", nil)
	}
	var three, one []float64
	for range 2 {
		three = append(three, throughput(c.LB))
		one = append(one, throughput(a.URL()))
	}
	report(b, "throughput: 3 members via HAProxy %.0f/s, 1 member direct %.0f/s, ratio %.2f (rounds %v vs %v)",
		mean(three), mean(one), mean(three)/mean(one), three, one)

	// Latency of a warm call: HAProxy against the home member directly.
	home := Must(b, 200, "GET", c.LB+"/api/run/burn00/burn", "", nil).Node()
	var viaLB, direct []time.Duration
	for range 300 {
		viaLB = append(viaLB, timed(func() { Must(b, 200, "GET", c.LB+"/api/run/burn00/burn", "", nil) }))
		direct = append(direct, timed(func() { Must(b, 200, "GET", c.Node(home).URL()+"/api/run/burn00/burn", "", nil) }))
	}
	report(b, "warm call latency (5 ms of CPU): HAProxy p50 %s p99 %s, direct p50 %s p99 %s",
		pct(viaLB, 50), pct(viaLB, 99), pct(direct, 50), pct(direct, 99))

	// Revocation on a, refused by b.
	nb := c.Node("b")
	Must(b, 200, "PUT", a.URL()+"/api/webtask/brev/x", c.Master, map[string]any{"code": burnCode})
	var rev []time.Duration
	for range 200 {
		tok := strings.TrimSpace(string(Must(b, 200, "POST", a.URL()+"/api/tokens/issue", c.Master, map[string]any{"ten": "brev"}).Body))
		Must(b, 200, "GET", nb.URL()+"/api/webtask/brev", tok, nil)
		Must(b, 200, "POST", a.URL()+"/api/tokens/revoke?token="+tok, c.Master, nil)
		rev = append(rev, until(b, func() bool {
			r, err := Get(nb.URL()+"/api/webtask/brev", tok)
			return err == nil && (r.Status == 401 || r.Status == 403)
		}))
	}
	report(b, "revocation a→b: p50 %s p99 %s max %s (200 trials)", pct(rev, 50), pct(rev, 99), pct(rev, 100))

	// Invalidation: code updated on a, served by b's warm sandbox.
	Must(b, 200, "PUT", a.URL()+"/api/webtask/binv/count", c.Master, map[string]any{"code": counter(0)})
	Must(b, 200, "GET", nb.URL()+"/api/run/binv/count", "", nil)
	var inv []time.Duration
	for v := 1; v <= 200; v++ {
		Must(b, 200, "PUT", a.URL()+"/api/webtask/binv/count", c.Master, map[string]any{"code": counter(v)})
		inv = append(inv, until(b, func() bool {
			r, err := Get(nb.URL()+"/api/run/binv/count", "")
			var o struct{ Version int }
			return err == nil && json.Unmarshal(r.Body, &o) == nil && o.Version == v && r.Header.Get("X-Wt-Sandbox") == "warm"
		}))
	}
	report(b, "invalidation a→b (warm sandbox): p50 %s p99 %s max %s (200 trials)", pct(inv, 50), pct(inv, 99), pct(inv, 100))
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		report(b, "load average at the end: %s", strings.TrimSpace(string(raw)))
	}
}

func report(b *testing.B, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.Log(msg)
	fmt.Println("bench-cluster:", msg)
}

func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// until polls cond (1 ms apart) and returns how long it took to hold;
// bounded at 5 s.
func until(b *testing.B, cond func() bool) time.Duration {
	start := time.Now()
	for !cond() {
		if time.Since(start) > 5*time.Second {
			b.Fatalf("not within 5s")
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	return time.Since(start)
}

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	i = min(max(i-1, 0), len(s)-1)
	return s[i].Round(10 * time.Microsecond)
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
