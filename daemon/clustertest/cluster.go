// Package clustertest brings up a webtaskd cluster on one machine for
// tests: a throwaway PostgreSQL (store/pgtest), member daemons in their own
// processes (own ports, data and state dirs, cgroup parents
// /webtaskd-test-cluster-*, node ids, one shared key-encryption key file)
// and HAProxy with the shipped configuration (scripts/cluster/haproxy.cfg).
// Its tests are the cluster's acceptance scenarios (docs/CLUSTER.md).
//
// Missing binaries (postgres, haproxy) skip loudly, and fail under CI=true.
package clustertest

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/daemon"
	"github.com/webtaskd/webtaskd/daemon/daemontest"
	"github.com/webtaskd/webtaskd/sandbox/sandboxtest"
	"github.com/webtaskd/webtaskd/store/pgtest"
)

// Options shape a test cluster.
type Options struct {
	// Env is extra WEBTASKD_* settings of every member.
	Env []string
}

// Cluster is a running test cluster of three members behind HAProxy.
type Cluster struct {
	PG      *pgtest.Server
	DSN     string // the members' database (superuser)
	KEKFile string
	Nodes   []*Node
	// LB is HAProxy's base URL; Master the cluster's master token.
	LB     string
	Master string

	haproxy *exec.Cmd
	hpDone  chan struct{}
}

// NodeIDs of the three members: HAProxy's servers a, b and c.
var NodeIDs = []string{"a", "b", "c"}

// Start brings up PostgreSQL, three members and HAProxy; all of it is
// stopped and removed when the test ends.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	daemontest.RequireRoot(t)
	hp := sandboxtest.NeedTool(t, "haproxy")
	c := &Cluster{PG: pgtest.Start(t)}
	c.DSN = c.PG.NewDatabase(t)
	dir := t.TempDir()
	c.KEKFile = filepath.Join(dir, "kek")
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	if err := os.WriteFile(c.KEKFile, kek, 0o600); err != nil {
		t.Fatal(err)
	}
	lbAddr := freeAddr(t)
	c.LB = "http://" + lbAddr
	for _, id := range NodeIDs {
		c.Nodes = append(c.Nodes, c.newNode(t, dir, id, o))
	}
	t.Cleanup(func() { c.stop(t) })
	// The first member mints the cluster's key sets and master token;
	// the others start together.
	c.Nodes[0].start(t)
	var wg sync.WaitGroup
	for _, n := range c.Nodes[1:] {
		wg.Add(1)
		go func() { defer wg.Done(); n.start(t) }()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	master, err := os.ReadFile(filepath.Join(c.Nodes[0].DataDir, daemon.MasterTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	c.Master = strings.TrimSpace(string(master))
	for _, n := range c.Nodes[1:] {
		other, err := os.ReadFile(filepath.Join(n.DataDir, daemon.MasterTokenFile))
		if err != nil || strings.TrimSpace(string(other)) != c.Master {
			t.Fatalf("member %s's master.token is not the cluster's (err %v)", n.ID, err)
		}
	}
	c.startHAProxy(t, hp, lbAddr)
	return c
}

// newNode lays out member id (not started).
func (c *Cluster) newNode(t testing.TB, dir, id string, o Options) *Node {
	suffix := daemontest.RandHex(3) + "-" + id
	n := &Node{
		ID:           id,
		Addr:         freeAddr(t),
		DataDir:      filepath.Join(dir, "data-"+id),
		StateDir:     "/run/webtaskd-test-cluster-" + suffix,
		CgroupParent: sandboxtest.CgroupParent("webtaskd-test-cluster-" + suffix),
		logPath:      logPath(dir, id),
	}
	// application_name tells the members' connections apart
	// (pg_stat_activity: the revocation test kills one LISTEN).
	u, err := url.Parse(c.DSN)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", "webtaskd-"+id)
	u.RawQuery = q.Encode()
	n.env = append([]string{
		"WEBTASKD_LISTEN=" + n.Addr,
		"WEBTASKD_DATA_DIR=" + n.DataDir,
		"WEBTASKD_STATE_DIR=" + n.StateDir,
		"WEBTASKD_CGROUP_PARENT=" + n.CgroupParent,
		"WEBTASKD_STORE=" + u.String(),
		"WEBTASKD_NODE_ID=" + id,
		"WEBTASKD_ADVERTISE_URL=" + n.URL(),
		"WEBTASKD_CLUSTER_URL=" + c.LB,
		"WEBTASKD_KEY_ENCRYPTION_KEY_FILE=" + c.KEKFile,
		"WEBTASKD_POOL_SIZE=0",
		"WEBTASKD_LOG_LEVEL=info",
		"WEBTASKD_SHUTDOWN_GRACE=" + sandboxtest.Scale(5*time.Second).String(),
		"WEBTASKD_START_TIMEOUT=" + sandboxtest.Scale(10*time.Second).String(),
		"WEBTASKD_EXEC_TIMEOUT=" + sandboxtest.Scale(10*time.Second).String(),
		"WEBTASKD_FREEZE_AFTER=" + sandboxtest.Scale(30*time.Second).String(),
	}, o.Env...)
	return n
}

// startHAProxy runs HAProxy in the foreground with the shipped config.
func (c *Cluster) startHAProxy(t testing.TB, bin, bind string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	cfg := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "cluster", "haproxy.cfg")
	cmd := exec.Command(bin, "-db", "-f", cfg)
	cmd.Env = append(os.Environ(), "WT_LB_BIND="+bind,
		"WT_NODE_A="+c.Nodes[0].Addr, "WT_NODE_B="+c.Nodes[1].Addr, "WT_NODE_C="+c.Nodes[2].Addr)
	cmd.Stdout = daemontest.Writer{T: t}
	cmd.Stderr = daemontest.Writer{T: t}
	if err := cmd.Start(); err != nil {
		t.Fatalf("haproxy: %v", err)
	}
	c.haproxy, c.hpDone = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(c.hpDone) }()
	// Serving once every member is reachable through it (a request
	// without a container key goes round-robin).
	seen := map[string]bool{}
	deadline := time.Now().Add(sandboxtest.Scale(20 * time.Second))
	for len(seen) < len(c.Nodes) {
		select {
		case <-c.hpDone:
			t.Fatal("haproxy exited")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("HAProxy did not route to every member within 20s (seen %v)", seen)
		}
		if r, err := Get(c.LB+"/healthz", ""); err == nil && r.Status == 200 {
			seen[r.Node()] = true
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// stop ends HAProxy and the members.
func (c *Cluster) stop(t testing.TB) {
	if c.haproxy != nil {
		_ = c.haproxy.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.hpDone:
		case <-time.After(10 * time.Second):
			_ = c.haproxy.Process.Kill()
			<-c.hpDone
		}
	}
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.stop(t) }()
	}
	wg.Wait()
	if t.Failed() {
		for _, n := range c.Nodes {
			t.Logf("--- member %s log (tail) ---\n%s", n.ID, n.LogTail())
		}
	}
}

// Node returns the member of node id.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Exec runs SQL on the members' database as the superuser.
func (c *Cluster) Exec(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgExec(ctx, t, c.DSN, sql, args...)
}
