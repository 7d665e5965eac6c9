package clustertest

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/daemon/daemontest"
	"github.com/webtaskd/webtaskd/sandbox/sandboxtest"
)

// Failover bounds (issue 12, scenario 2).
const (
	// failoverBound: a failed member's containers are served again this
	// long after it failed, and no request sent later fails.
	failoverBound = 3 * time.Second
	// failoverPool is each member's pool in the failover test: all of a
	// failed member's containers may move to one other member (the next
	// point on the hash ring), so it holds as many as a member is home to
	// (checked below). With 6, a member that got 8 of them cold-booted one,
	// served 3.1 s after the failure on a loaded CI machine.
	failoverPool = 12
)

// sample is one request of the load.
type sample struct {
	sent, done time.Time
	node       string
	err        error
}

// load calls every container through HAProxy, one request at a time per
// container, until stopped; it keeps every outcome.
type load struct {
	mu      sync.Mutex
	samples map[string][]sample
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startLoad(c *Cluster, containers []string) *load {
	l := &load{samples: map[string][]sample{}, stop: make(chan struct{})}
	for _, ct := range containers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				s := sample{sent: time.Now()}
				r, err := Do("GET", c.LB+"/api/run/"+ct+"/count", "", nil)
				if err == nil && r.Status != 200 {
					err = fmt.Errorf("status %d: %s", r.Status, r.Body)
				}
				s.node, s.err, s.done = r.Node(), err, time.Now()
				l.mu.Lock()
				l.samples[ct] = append(l.samples[ct], s)
				l.mu.Unlock()
				select { // pace: about 20 requests a second per container
				case <-l.stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
	return l
}

func (l *load) end() {
	close(l.stop)
	l.wg.Wait()
}

// since returns container ct's samples sent at or after t.
func (l *load) since(ct string, t time.Time) []sample {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []sample
	for _, s := range l.samples[ct] {
		if !s.sent.Before(t) {
			out = append(out, s)
		}
	}
	return out
}

// TestFailover: a member SIGKILLed, then one SIGSTOPped, under load: its
// containers are served again within 3 s, no request sent after that
// fails, the other members' containers never move; after a restart (or
// SIGCONT) its containers go home (issue 12, scenario 2).
func TestFailover(t *testing.T) {
	t.Parallel()
	// A pool on every member, as in production (default 2), large enough
	// for the containers that move: they start on pre-booted sandboxes, not
	// cold (a cold boot on a loaded 2-core machine takes seconds).
	c := Start(t, Options{Env: []string{"WEBTASKD_POOL_SIZE=" + strconv.Itoa(failoverPool)}})
	const n = 24
	var containers []string
	home := map[string]string{}
	for i := range n {
		ct := fmt.Sprintf("fo%02d", i)
		containers = append(containers, ct)
		Must(t, 200, "PUT", c.LB+"/api/webtask/"+ct+"/count", c.Master, map[string]any{"code": counter(1)})
		home[ct] = Must(t, 200, "GET", c.LB+"/api/run/"+ct+"/count", "", nil).Node()
	}
	byNode := map[string][]string{}
	for ct, h := range home {
		byNode[h] = append(byNode[h], ct)
	}
	t.Logf("containers per member: a %d, b %d, c %d", len(byNode["a"]), len(byNode["b"]), len(byNode["c"]))
	for _, id := range NodeIDs {
		if len(byNode[id]) == 0 {
			t.Fatalf("member %s is home to no container: cannot test its failure", id)
		}
		if len(byNode[id]) > failoverPool {
			t.Fatalf("member %s is home to %d containers, more than the pool of %d: its containers could not all move to pooled sandboxes", id, len(byNode[id]), failoverPool)
		}
	}
	l := startLoad(c, containers)
	defer l.end()

	fail := func(what, victim string, breakIt, repair func()) {
		t.Helper()
		waitPools(t, c)
		begin := time.Now()
		breakIt()
		failedAt := time.Now()
		bound := sandboxtest.Scale(failoverBound)
		// The load runs until every container has two requests sent after
		// the bound and answered (slow answers on a loaded machine are not
		// failures; bounded).
		daemontest.WaitFor(t, what+": two requests of every container sent after the bound and answered", 60*time.Second, func() bool {
			for _, ct := range containers {
				if len(l.since(ct, failedAt.Add(bound))) < 2 {
					return false
				}
			}
			return true
		})
		var worst time.Duration // until a victim's container was served again
		for _, ct := range byNode[victim] {
			for _, s := range l.since(ct, failedAt) {
				if s.err == nil {
					worst = max(worst, s.done.Sub(failedAt))
					break
				}
			}
		}
		t.Logf("%s of %s: its containers served again within %s", what, victim, worst.Round(time.Millisecond))
		if worst > bound {
			t.Errorf("%s of %s: a container of it was served again only %s after the failure, want within %s", what, victim, worst.Round(time.Millisecond), bound)
		}
		for _, ct := range containers {
			for _, s := range l.since(ct, failedAt.Add(bound)) {
				if s.err != nil {
					t.Errorf("%s: container %s: request sent %s after the failure failed: %v", what, ct, s.sent.Sub(failedAt).Round(time.Millisecond), s.err)
				}
			}
			if home[ct] == victim {
				continue
			}
			for _, s := range l.since(ct, begin) {
				if s.err != nil || s.node != home[ct] {
					t.Errorf("%s: container %s of member %s was disturbed: served by %q (%v)", what, ct, home[ct], s.node, s.err)
					break
				}
			}
		}
		repair()
		// Back home: each of the victim's containers served by it again.
		back := time.Now()
		daemontest.WaitFor(t, what+": the containers of "+victim+" back home", 30*time.Second, func() bool {
			for _, ct := range byNode[victim] {
				s := l.since(ct, time.Now().Add(-200*time.Millisecond))
				if len(s) == 0 || s[len(s)-1].node != victim {
					return false
				}
			}
			return true
		})
		t.Logf("%s: %d containers of %s back home %s after the repair", what, len(byNode[victim]), victim, time.Since(back).Round(time.Millisecond))
	}

	// SIGKILL the member with the most containers.
	ids := append([]string(nil), NodeIDs...)
	sort.Slice(ids, func(i, j int) bool { return len(byNode[ids[i]]) > len(byNode[ids[j]]) })
	killed := c.Node(ids[0])
	fail("SIGKILL", killed.ID, func() { killed.Kill(t) }, func() { killed.Restart(t) })
	if t.Failed() {
		return
	}
	// SIGSTOP another (a hung member: connections accepted, never answered).
	hung := c.Node(ids[1])
	fail("SIGSTOP", hung.ID, func() { hung.Signal(t, syscall.SIGSTOP) }, func() { hung.Signal(t, syscall.SIGCONT) })
}

// waitPools waits (bounded) until every running member's pool is full.
func waitPools(t *testing.T, c *Cluster) {
	t.Helper()
	daemontest.WaitFor(t, "every member's pool full", 60*time.Second, func() bool {
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			r, err := Get(n.URL()+"/api/admin/status", c.Master)
			var st struct {
				Fleet struct {
					PoolReady  int `json:"pool_ready"`
					PoolTarget int `json:"pool_target"`
				} `json:"fleet"`
			}
			if err != nil || r.Status != 200 || json.Unmarshal(r.Body, &st) != nil || st.Fleet.PoolReady < st.Fleet.PoolTarget {
				return false
			}
		}
		return true
	})
}
