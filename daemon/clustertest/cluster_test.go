package clustertest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/daemon/daemontest"
)

// counterCode answers which call of its sandbox this is (global state
// survives warm calls only) and its version.
const counterCode = `module.exports = function (ctx, cb) {
  global.calls = (global.calls || 0) + 1;
  cb(null, { version: VERSION, calls: global.calls });
};`

func counter(version int) string {
	return strings.Replace(counterCode, "VERSION", strconv.Itoa(version), 1)
}

// TestCluster runs the scenarios that share one cluster, one after the
// other: affinity, revocation, storage, logs, invalidation, PostgreSQL
// lost, and cron on real minute boundaries, whose jobs are created first
// so that its waiting overlaps the others (issue 12: 1, 3, 4, 5, 6, 7).
func TestCluster(t *testing.T) {
	t.Parallel()
	c := Start(t, Options{})
	cron := startCron(t, c)
	t.Run("Affinity", func(t *testing.T) { testAffinity(t, c) })
	t.Run("Revocation", func(t *testing.T) { testRevocation(t, c) })
	t.Run("Storage", func(t *testing.T) { testStorage(t, c) })
	t.Run("Logs", func(t *testing.T) { testLogs(t, c) })
	t.Run("Invalidation", func(t *testing.T) { testInvalidation(t, c) })
	t.Run("BackupRefused", func(t *testing.T) { testBackupRefused(t, c) })
	t.Run("CronMinuteBoundaries", cron.finish) // it kills a member
	t.Run("ReadyzWithoutPostgres", func(t *testing.T) { testReadyzWithoutPostgres(t, c) })
}

// testBackupRefused: a cluster member refuses wtctl backup's request and
// names what to do instead, rather than producing a partial archive
// (issue 12, scenario 10).
func testBackupRefused(t *testing.T, c *Cluster) {
	for _, n := range c.Nodes {
		r := Must(t, 400, "POST", n.URL()+"/api/admin/backup", c.Master, map[string]any{"passphrase": "a long enough passphrase"})
		if !strings.Contains(string(r.Body), "pg_dump") || !strings.Contains(string(r.Body), "key-encryption key file") {
			t.Fatalf("member %s: backup refusal %s: want pg_dump and the key-encryption key file named", n.ID, r.Body)
		}
		if r.Header.Get("Content-Type") == "application/octet-stream" {
			t.Fatalf("member %s answered an archive", n.ID)
		}
	}
}

// testReadyzWithoutPostgres: members that lost PostgreSQL fail /readyz
// (HAProxy takes them out of the rotation) and pass it again once it is
// back (the members still running).
func testReadyzWithoutPostgres(t *testing.T, c *Cluster) {
	db := c.DSN[strings.LastIndex(c.DSN, "/")+1:]
	db = db[:strings.IndexByte(db, '?')]
	admin := strings.Replace(c.DSN, "/"+db+"?", "/postgres?", 1)
	ctx := context.Background()
	pgExec(ctx, t, admin, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS false")
	pgExec(ctx, t, admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", db)
	ready := func(want int) func() bool {
		return func() bool {
			for _, n := range c.Nodes {
				if !n.Running() {
					continue
				}
				if r, err := Get(n.URL()+"/readyz", ""); err != nil || r.Status != want {
					return false
				}
			}
			return true
		}
	}
	daemontest.WaitFor(t, "every member's /readyz failing without PostgreSQL", 10*time.Second, ready(503))
	daemontest.WaitFor(t, "HAProxy answering 503 with no member in the rotation", 10*time.Second, func() bool {
		r, err := Get(c.LB+"/api/run/aff00/count", "")
		return err == nil && r.Status == 503
	})
	pgExec(ctx, t, admin, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS true")
	daemontest.WaitFor(t, "every member ready again with PostgreSQL back", 10*time.Second, ready(200))
	daemontest.WaitFor(t, "HAProxy serving again", 10*time.Second, func() bool {
		r, err := Get(c.LB+"/api/run/aff00/count", "")
		return err == nil && r.Status == 200
	})
}

// testAffinity: 60 containers × 5 calls through HAProxy: each container
// stays on one member, calls 2–5 are warm, every member serves at least
// 10 % of the containers.
func testAffinity(t *testing.T, c *Cluster) {
	const containers, calls = 60, 5
	for i := range containers {
		Must(t, 200, "PUT", fmt.Sprintf("%s/api/webtask/aff%02d/count", c.LB, i), c.Master, map[string]any{"code": counter(1)})
	}
	type result struct {
		nodes  []string
		served []string
		err    error
	}
	res := make([]result, containers)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 6)
	for i := range containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			for range calls {
				r, err := Do("GET", fmt.Sprintf("%s/api/run/aff%02d/count", c.LB, i), "", nil)
				if err == nil && r.Status != 200 {
					err = fmt.Errorf("status %d: %s", r.Status, r.Body)
				}
				if err != nil {
					res[i].err = err
					return
				}
				res[i].nodes = append(res[i].nodes, r.Node())
				res[i].served = append(res[i].served, r.Header.Get("X-Wt-Sandbox"))
			}
		}()
	}
	wg.Wait()
	perNode := map[string]int{}
	for i, r := range res {
		if r.err != nil {
			t.Fatalf("container aff%02d: %v", i, r.err)
		}
		for k := 1; k < calls; k++ {
			if r.nodes[k] != r.nodes[0] {
				t.Errorf("container aff%02d moved: served by %v", i, r.nodes)
				break
			}
			if r.served[k] != "warm" {
				t.Errorf("container aff%02d call %d was %q, want warm (all: %v)", i, k+1, r.served[k], r.served)
			}
		}
		perNode[r.nodes[0]]++
	}
	t.Logf("containers per member: %v", perNode)
	for _, n := range c.Nodes {
		if perNode[n.ID]*10 < containers {
			t.Errorf("member %s serves %d of %d containers, want at least 10%%", n.ID, perNode[n.ID], containers)
		}
	}
}

// issue returns a new tenant token of container ten (through url).
func issue(t *testing.T, url, master, ten string) string {
	t.Helper()
	r := Must(t, 200, "POST", url+"/api/tokens/issue", master, map[string]any{"ten": ten})
	return strings.TrimSpace(string(r.Body))
}

// testRevocation: a token revoked on A is refused by B within 2 s, and
// still so after B's LISTEN connection was killed.
func testRevocation(t *testing.T, c *Cluster) {
	a, b := c.Node("a"), c.Node("b")
	Must(t, 200, "PUT", a.URL()+"/api/webtask/rev/hello", c.Master, map[string]any{"code": counter(1)})
	check := func(tok string) int {
		r, err := Get(b.URL()+"/api/webtask/rev", tok)
		if err != nil {
			t.Fatal(err)
		}
		return r.Status
	}
	revokeAndWait := func(what string) {
		tok := issue(t, a.URL(), c.Master, "rev")
		if st := check(tok); st != 200 {
			t.Fatalf("%s: the fresh token is refused by B: %d", what, st)
		}
		Must(t, 200, "POST", a.URL()+"/api/tokens/revoke?token="+tok, c.Master, nil)
		start := time.Now()
		daemontest.WaitFor(t, what+": B refusing the token revoked on A", 2*time.Second, func() bool { return check(tok) == 401 || check(tok) == 403 })
		t.Logf("%s: refused by B %s after the revocation on A", what, time.Since(start).Round(time.Millisecond))
	}
	revokeAndWait("feed up")

	// B's LISTEN connection killed: B catches up when it listens again.
	killed := c.Exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = 'webtaskd-b' AND query LIKE 'LISTEN%'`)
	if killed != 1 {
		t.Fatalf("killed %d LISTEN connections of B, want 1", killed)
	}
	revokeAndWait("listener killed")
}

// testStorage: 3 clients × 200 read-modify-write increments of one
// document, each client through another member, end at 600; every refused
// write is a 409.
func testStorage(t *testing.T, c *Cluster) {
	const clients, increments = 3, 200
	Must(t, 200, "PUT", c.LB+"/api/webtask/store/doc", c.Master, map[string]any{"code": counter(1)})
	type doc struct {
		Data string `json:"data"`
		Etag *int64 `json:"etag"`
	}
	conflicts := make([]int, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := c.Nodes[i].URL() + "/api/webtask/store/doc/data"
			for done := 0; done < increments; {
				r, err := Get(url, c.Master)
				if err != nil || r.Status != 200 {
					errs <- fmt.Errorf("client %d: GET: %v %d %s", i, err, r.Status, r.Body)
					return
				}
				var d doc
				if err := json.Unmarshal(r.Body, &d); err != nil {
					errs <- err
					return
				}
				n := 0
				if d.Data != "" {
					n, _ = strconv.Atoi(d.Data)
				}
				body := map[string]any{"data": strconv.Itoa(n + 1), "etag": d.Etag}
				r, err = Do("PUT", url, c.Master, body)
				switch {
				case err != nil:
					errs <- fmt.Errorf("client %d: PUT: %v", i, err)
					return
				case r.Status == 200:
					done++
				case r.Status == 409:
					conflicts[i]++
				default:
					errs <- fmt.Errorf("client %d: PUT refused with %d, want 409: %s", i, r.Status, r.Body)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r := Must(t, 200, "GET", c.LB+"/api/webtask/store/doc/data", c.Master, nil)
	var d doc
	_ = json.Unmarshal(r.Body, &d)
	if d.Data != strconv.Itoa(clients*increments) {
		t.Fatalf("document is %q after %d increments, want %d", d.Data, clients*increments, clients*increments)
	}
	t.Logf("conflicts (409, retried) per client: %v", conflicts)
}

// testLogs: a log stream opened on A for a container whose sandbox runs on
// B gets B's 100 lines, in order.
func testLogs(t *testing.T, c *Cluster) {
	a, b := c.Node("a"), c.Node("b")
	const lines = 100
	// The peer route: never through the load balancer; on a member, only
	// with the peer credential.
	if r, err := Get(c.LB+"/api/cluster/logs/logs", c.Master); err != nil || r.Status != 404 {
		t.Fatalf("the peer route through HAProxy: %v %d, want 404", err, r.Status)
	}
	if r, err := Get(a.URL()+"/api/cluster/logs/logs?follow=0", c.Master); err != nil || r.Status != 401 {
		t.Fatalf("the peer route with the master token: %v %d, want 401", err, r.Status)
	}
	Must(t, 200, "PUT", a.URL()+"/api/webtask/logs/talk", c.Master, map[string]any{
		"code": `module.exports = function (ctx, cb) { for (let i = 0; i < 100; i++) console.log('line ' + i); cb(null, 'ok'); };`,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", a.URL()+"/api/logs/tenant/logs?tail=0", nil)
	req.Header.Set("Authorization", "Bearer "+c.Master)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Wt-Node") != "a" {
		t.Fatalf("log stream on A: %d from %q", resp.StatusCode, resp.Header.Get("X-Wt-Node"))
	}
	got := make(chan string, 2*lines)
	go func() {
		defer close(got)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var rec struct {
					Msg string `json:"msg"`
				}
				if json.Unmarshal([]byte(d), &rec) == nil && rec.Msg != "" {
					got <- rec.Msg
				}
			}
		}
	}()
	// A has peer streams to B once it knows B (heartbeats): wait until a
	// first run's line shows up, then count a second run's lines.
	daemontest.WaitFor(t, "a line of B's run on A's stream", 10*time.Second, func() bool {
		r := Must(t, 200, "GET", b.URL()+"/api/run/logs/talk", "", nil)
		if r.Node() != "b" {
			t.Fatalf("run served by %q, want b", r.Node())
		}
		for {
			select {
			case m := <-got:
				if m == "line 99" {
					return true
				}
			case <-time.After(500 * time.Millisecond):
				return false
			}
		}
	})
	Must(t, 200, "GET", b.URL()+"/api/run/logs/talk", "", nil)
	for i := range lines {
		m := daemontest.Receive(t, got, 10*time.Second, fmt.Sprintf("line %d", i))
		if m != fmt.Sprintf("line %d", i) {
			t.Fatalf("line %d on A's stream is %q: out of order or lost", i, m)
		}
	}
}

// testInvalidation: code updated through A is served by B's warm sandbox
// within 2 s.
func testInvalidation(t *testing.T, c *Cluster) {
	a, b := c.Node("a"), c.Node("b")
	Must(t, 200, "PUT", a.URL()+"/api/webtask/inval/count", c.Master, map[string]any{"code": counter(1)})
	type out struct {
		Version int `json:"version"`
		Calls   int `json:"calls"`
	}
	call := func() (out, Response) {
		r := Must(t, 200, "GET", b.URL()+"/api/run/inval/count", "", nil)
		var o out
		if err := json.Unmarshal(r.Body, &o); err != nil {
			t.Fatalf("answer %s: %v", r.Body, err)
		}
		return o, r
	}
	call()
	if o, r := call(); o.Version != 1 || r.Header.Get("X-Wt-Sandbox") != "warm" {
		t.Fatalf("B's second call: %+v served %q, want version 1 warm", o, r.Header.Get("X-Wt-Sandbox"))
	}
	Must(t, 200, "PUT", a.URL()+"/api/webtask/inval/count", c.Master, map[string]any{"code": counter(2)})
	start := time.Now()
	var last out
	var served string
	daemontest.WaitFor(t, "B serving the code updated on A", 2*time.Second, func() bool {
		o, r := call()
		last, served = o, r.Header.Get("X-Wt-Sandbox")
		return o.Version == 2
	})
	t.Logf("B served the new code %s after the update on A", time.Since(start).Round(time.Millisecond))
	if served != "warm" || last.Calls < 3 {
		t.Fatalf("the new code was served %q after %d calls of the sandbox, want B's warm sandbox", served, last.Calls)
	}
}

// TestDocsShipTheHAProxyConfig: docs/CLUSTER.md shows the configuration
// make cluster and these tests use, verbatim.
func TestDocsShipTheHAProxyConfig(t *testing.T) {
	cfg, err := os.ReadFile("../../scripts/cluster/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/CLUSTER.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```haproxy\n"+string(cfg)+"```") {
		t.Fatal("docs/CLUSTER.md does not show scripts/cluster/haproxy.cfg verbatim: copy it in")
	}
}
