package daemon_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/webtaskd/webtaskd/api/types"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
	"github.com/webtaskd/webtaskd/sandbox/sandboxtest"
)

// fleetStatus reads GET /api/admin/status.
func fleetStatus(t *testing.T, env *Env) types.FleetStatus {
	t.Helper()
	r := env.Call("GET", "/api/admin/status", env.Master, nil)
	MustStatus(t, r, 200, "status")
	var body struct {
		Fleet types.FleetStatus `json:"fleet"`
	}
	r.JSON(t, &body)
	return body.Fleet
}

// waitPoolFull waits until at least n pooled sandboxes are ready (the
// pool grows above its configured size while new containers arrive).
func waitPoolFull(t *testing.T, env *Env, n int) {
	t.Helper()
	WaitFor(t, fmt.Sprintf("pool of %d ready", n), 30*time.Second, func() bool { return fleetStatus(t, env).PoolReady >= n })
}

// sandboxOf returns the live sandbox of container (fails when none).
func sandboxOf(t *testing.T, env *Env, container string) types.SandboxInfo {
	t.Helper()
	for _, s := range env.Sandboxes() {
		if s.Container == container {
			return s
		}
	}
	t.Fatalf("no sandbox for container %s", container)
	return types.SandboxInfo{}
}

func putLimits(t *testing.T, env *Env, container string, body map[string]any) {
	t.Helper()
	r := env.Call("PUT", "/api/admin/containers/"+container+"/limits", env.Master, body)
	MustStatus(t, r, 200, "PUT limits")
}

// wantError checks a JSON error response.
func wantError(t *testing.T, r Response, status int, msgPart string) {
	t.Helper()
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		ReqID   string `json:"req_id"`
	}
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	r.JSON(t, &e)
	if e.Code != status || !strings.Contains(e.Message, msgPart) || e.ReqID == "" {
		t.Fatalf("error body %s, want code %d and a message containing %q", r.Body, status, msgPart)
	}
}

func TestFleetPoolAssignment(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 2
	env := Start(t, cfg)
	waitPoolFull(t, env, 2)

	owner := map[string]string{} // sandbox id -> container
	seen := func(container string) {
		t.Helper()
		s := sandboxOf(t, env, container)
		if prev, ok := owner[s.ID]; ok && prev != container {
			t.Fatalf("sandbox %s served %s and %s", s.ID, prev, container)
		}
		owner[s.ID] = container
	}
	for i, c := range []string{"p1", "p2", "p3"} {
		env.PutWebtask(c, "hello", helloCode, nil)
		r := env.Call("GET", "/api/run/"+c+"/hello", "", nil)
		MustStatus(t, r, 200, "first call")
		if got := r.Header.Get("X-Wt-Sandbox"); got != "pooled" {
			t.Fatalf("first call to %s served %q, want pooled", c, got)
		}
		if d, err := strconv.ParseFloat(r.Header.Get("X-Wt-Duration-Ms"), 64); err != nil || d <= 0 {
			t.Errorf("x-wt-duration-ms = %q", r.Header.Get("X-Wt-Duration-Ms"))
		}
		r = env.Call("GET", "/api/run/"+c+"/hello", "", nil)
		if got := r.Header.Get("X-Wt-Sandbox"); got != "warm" || !bytes.Contains(r.Body, []byte(`"calls":2`)) {
			t.Fatalf("second call to %s: served %q body %s, want warm with calls 2", c, got, r.Body)
		}
		seen(c)
		if i == 0 {
			waitPoolFull(t, env, 2) // the pool refills in the background
		}
	}
	waitPoolFull(t, env, 2)
	// A recycled container gets a fresh (pooled) sandbox, never an old one.
	old := sandboxOf(t, env, "p1")
	MustStatus(t, env.Call("DELETE", "/api/admin/sandboxes/"+old.ID, env.Master, nil), 204, "kill")
	r := env.Call("GET", "/api/run/p1/hello", "", nil)
	if got := r.Header.Get("X-Wt-Sandbox"); got != "pooled" || !bytes.Contains(r.Body, []byte(`"calls":1`)) {
		t.Fatalf("after kill: served %q body %s, want a fresh pooled sandbox", got, r.Body)
	}
	seen("p1")
	if _, ok := owner[old.ID]; !ok || sandboxOf(t, env, "p1").ID == old.ID {
		t.Fatal("the killed sandbox came back")
	}
	if len(owner) != 4 {
		t.Fatalf("owners %v, want 4 distinct sandboxes", owner)
	}
	// A container whose memory limit differs from the pool's boots cold.
	putLimits(t, env, "big", map[string]any{"memory_mb": 384})
	env.PutWebtask("big", "hello", helloCode, nil)
	r = env.Call("GET", "/api/run/big/hello", "", nil)
	if got := r.Header.Get("X-Wt-Sandbox"); got != "cold" {
		t.Fatalf("container with its own memory limit served %q, want cold", got)
	}
	if l := sandboxOf(t, env, "big").Limits; l.MemoryMB != 384 {
		t.Fatalf("limits %+v, want memory 384", l)
	}
}

// startFrozen starts a daemon that freezes idle sandboxes at once (no
// pool), calls ice/hello once (cold) and waits until its sandbox is frozen.
func startFrozen(t *testing.T) *Env {
	t.Helper()
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 0
	cfg.Sandbox.FreezeAfter = 200 * time.Millisecond
	env := Start(t, cfg)
	env.PutWebtask("ice", "hello", helloCode, nil)
	r := env.Call("GET", "/api/run/ice/hello", "", nil)
	if got := r.Header.Get("X-Wt-Sandbox"); got != "cold" {
		t.Fatalf("first call served %q, want cold (no pool)", got)
	}
	WaitFor(t, "sandbox frozen", 10*time.Second, func() bool { return sandboxOf(t, env, "ice").State == types.SandboxPaused })
	return env
}

func TestFleetFreezeThawKeepsGlobal(t *testing.T) {
	env := startFrozen(t)
	st := fleetStatus(t, env)
	if st.Sandboxes[types.SandboxPaused] != 1 {
		t.Errorf("status %+v, want one paused sandbox", st)
	}
	r := env.Call("GET", "/api/run/ice/hello", "", nil)
	MustStatus(t, r, 200, "call after freeze")
	if got := r.Header.Get("X-Wt-Sandbox"); got != "warm" || !bytes.Contains(r.Body, []byte(`"calls":2`)) {
		t.Fatalf("after thaw: served %q body %s, want warm with calls 2 (global kept)", got, r.Body)
	}
}

// TestFleetKilledWhileFrozen: kill -9 of a frozen sandbox's runtime lands
// at the thaw, after the call's liveness checks; the next calls answer 200
// from a fresh sandbox.
func TestFleetKilledWhileFrozen(t *testing.T) {
	env := startFrozen(t)
	old := sandboxOf(t, env, "ice")
	if err := syscall.Kill(old.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r := env.Call("GET", "/api/run/ice/hello", "", nil)
		MustStatus(t, r, 200, "call "+strconv.Itoa(i+1)+" after kill -9 while frozen")
	}
	if now := sandboxOf(t, env, "ice"); now.ID == old.ID {
		t.Fatalf("still served by the killed sandbox %s", old.ID)
	}
	if v := sumMetric(scrape(t, env), "webtaskd_invocation_retries_total", nil); v != 1 {
		t.Errorf("webtaskd_invocation_retries_total = %v, want 1", v)
	}
}

func TestFleetFailuresContained(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 1
	env := Start(t, cfg)
	env.PutWebtask("good", "hello", helloCode, nil)
	MustStatus(t, env.Call("GET", "/api/run/good/hello", "", nil), 200, "neighbour")
	goodID := sandboxOf(t, env, "good").ID

	// The neighbour keeps answering while the others fail.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var neighbourErrs []string
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := env.Call("GET", "/api/run/good/hello", "", nil)
			if r.Status != 200 {
				mu.Lock()
				neighbourErrs = append(neighbourErrs, fmt.Sprintf("%d %s", r.Status, r.Body))
				mu.Unlock()
			}
		}
	}()

	putLimits(t, env, "oom", map[string]any{"memory_mb": 64})
	env.PutWebtask("oom", "t", `module.exports = cb => { const k = []; for (;;) k.push(Buffer.alloc(1 << 20, 1)); };`, nil)
	wantError(t, env.Call("GET", "/api/run/oom/t", "", nil), 500, "memory limit")

	putLimits(t, env, "slow", map[string]any{"exec_timeout_ms": 500})
	env.PutWebtask("slow", "t", `module.exports = cb => { for (;;) {} };`, nil)
	r := env.Call("GET", "/api/run/slow/t", "", nil)
	wantError(t, r, 504, "execution time limit")
	if len(env.Sandboxes()) > 0 {
		for _, s := range env.Sandboxes() {
			if s.Container == "slow" {
				t.Errorf("timed-out sandbox %s not recycled", s.ID)
			}
		}
	}

	env.PutWebtask("exit", "t", `module.exports = cb => process.exit(3);`, nil)
	env.PutWebtask("exit", "ok", helloCode, nil)
	MustStatus(t, env.Call("GET", "/api/run/exit/ok", "", nil), 200, "before exit")
	exitID := sandboxOf(t, env, "exit").ID
	wantError(t, env.Call("GET", "/api/run/exit/t", "", nil), 500, "runtime exited")
	r = env.Call("GET", "/api/run/exit/ok", "", nil)
	MustStatus(t, r, 200, "after exit")
	if sandboxOf(t, env, "exit").ID == exitID || !bytes.Contains(r.Body, []byte(`"calls":1`)) {
		t.Errorf("after process.exit the next call did not get a fresh sandbox: %s", r.Body)
	}

	putLimits(t, env, "fork", map[string]any{"pids": 40, "memory_mb": 1024})
	env.PutWebtask("fork", "t", sandboxtest.ForkBombCode, nil)
	r = env.Call("GET", "/api/run/fork/t", "", nil)
	MustStatus(t, r, 200, "fork bomb")
	var fb struct {
		Spawned int            `json:"spawned"`
		Errors  map[string]int `json:"errors"`
	}
	r.JSON(t, &fb)
	if fb.Errors["EAGAIN"] == 0 || fb.Spawned >= 60 {
		t.Fatalf("fork bomb: %+v, want EAGAIN at the pids limit", fb)
	}
	fid := sandboxOf(t, env, "fork").ID
	ir := env.Call("GET", "/api/admin/sandboxes/"+fid, env.Master, nil)
	MustStatus(t, ir, 200, "inspect")
	var info types.SandboxInfo
	ir.JSON(t, &info)
	if info.Cgroup == nil || info.Cgroup.Pids > 40 || info.Cgroup.PidsLimit != 40 {
		t.Fatalf("fork sandbox cgroup %+v, want pids <= limit 40", info.Cgroup)
	}

	close(stop)
	wg.Wait()
	if len(neighbourErrs) > 0 {
		t.Fatalf("neighbour failed %d times: %v", len(neighbourErrs), neighbourErrs[:min(3, len(neighbourErrs))])
	}
	if sandboxOf(t, env, "good").ID != goodID {
		t.Fatal("the neighbour's sandbox was replaced")
	}
	// The failures are counted.
	fams := scrape(t, env)
	for name, min := range map[string]float64{"webtaskd_ooms_total": 1, "webtaskd_timeouts_total": 1} {
		if v := sumMetric(fams, name, nil); v < min {
			t.Errorf("%s = %v, want >= %v", name, v, min)
		}
	}
}

func TestFleetConcurrency(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 0
	cfg.Sandbox.QueueTimeout = 300 * time.Millisecond // shorter than the slow call holding the only slot
	env := Start(t, cfg)
	env.PutWebtask("par", "t", `module.exports = (ctx, cb) => setTimeout(() => cb(null, { id: ctx.query.id }), Number(ctx.query.ms || 100));`, nil)
	MustStatus(t, env.Call("GET", "/api/run/par/t?id=warmup&ms=1", "", nil), 200, "warm-up")

	// One slow call does not block the others.
	slowDone := make(chan Response, 1)
	go func() { slowDone <- env.Call("GET", "/api/run/par/t?id=slow&ms=3000", "", nil) }()

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := strconv.Itoa(i)
			r := env.Call("GET", "/api/run/par/t?id="+id, "", nil)
			var body struct{ ID string }
			if r.Status != 200 || json.Unmarshal(r.Body, &body) != nil || body.ID != id {
				errs <- fmt.Sprintf("call %s: %d %s", id, r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	select {
	case r := <-slowDone:
		t.Fatalf("the slow call finished before the 50 fast ones: %d %s", r.Status, r.Body)
	default:
	}
	if list := env.Sandboxes(); len(list) != 1 || list[0].Invocations < n+1 {
		t.Fatalf("sandboxes %+v, want one that served every call", list)
	}
	r := <-slowDone
	MustStatus(t, r, 200, "slow call")

	// Past the per-container limit, calls queue; past the queue timeout, 429.
	putLimits(t, env, "one", map[string]any{"max_concurrency": 1})
	env.PutWebtask("one", "t", `module.exports = (ctx, cb) => setTimeout(() => cb(null, {}), Number(ctx.query.ms));`, nil)
	MustStatus(t, env.Call("GET", "/api/run/one/t?ms=1", "", nil), 200, "warm-up")
	started := make(chan Response, 1)
	go func() { started <- env.Call("GET", "/api/run/one/t?ms=2500", "", nil) }()
	WaitFor(t, "slow call in flight", 10*time.Second, func() bool { return sandboxOf(t, env, "one").InFlight == 1 })
	wantError(t, env.Call("GET", "/api/run/one/t?ms=1", "", nil), 429, "too many concurrent calls")
	MustStatus(t, <-started, 200, "the call holding the slot")
}

func TestFleetEvictionAtMaxSandboxes(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 0
	cfg.Sandbox.MaxSandboxes = 2
	env := Start(t, cfg)
	for _, c := range []string{"e1", "e2", "e3"} {
		env.PutWebtask(c, "hello", helloCode, nil)
	}
	MustStatus(t, env.Call("GET", "/api/run/e1/hello", "", nil), 200, "e1")
	MustStatus(t, env.Call("GET", "/api/run/e2/hello", "", nil), 200, "e2")
	MustStatus(t, env.Call("GET", "/api/run/e1/hello", "", nil), 200, "e1 again") // e2 is now the LRU
	e2 := sandboxOf(t, env, "e2")
	MustStatus(t, env.Call("GET", "/api/run/e3/hello", "", nil), 200, "e3")
	list := env.Sandboxes()
	if len(list) != 2 || list[0].Container != "e1" || list[1].Container != "e3" {
		t.Fatalf("sandboxes %+v, want e1 and e3 (e2 evicted)", list)
	}
	if ProcAlive(e2.Pid) {
		t.Errorf("evicted sandbox pid %d alive", e2.Pid)
	}
	fams := scrape(t, env)
	if v := sumMetric(fams, "webtaskd_sandbox_evictions_total", nil); v != 1 {
		t.Errorf("evictions = %v, want 1", v)
	}
}

func TestFleetNothingLeftAfterStop(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 2
	cfg.Sandbox.FreezeAfter = 100 * time.Millisecond
	env := Start(t, cfg)
	env.PutWebtask("a", "hello", helloCode, nil)
	env.PutWebtask("b", "hello", helloCode, nil)
	MustStatus(t, env.Call("GET", "/api/run/a/hello", "", nil), 200, "a")
	MustStatus(t, env.Call("GET", "/api/run/b/hello", "", nil), 200, "b")
	waitPoolFull(t, env, 2)
	WaitFor(t, "a frozen", 10*time.Second, func() bool { return sandboxOf(t, env, "a").State == types.SandboxPaused })
	// Every process of the fleet: assigned and pooled.
	var pids []int
	procsFiles := mustGlob(t, filepath.Join("/sys/fs/cgroup/pids", cfg.Sandbox.CgroupParent, "*", "cgroup.procs"))
	if len(procsFiles) == 0 { // cgroup v2
		procsFiles = mustGlob(t, filepath.Join("/sys/fs/cgroup", cfg.Sandbox.CgroupParent, "*", "cgroup.procs"))
	}
	for _, f := range procsFiles {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range strings.Fields(string(raw)) {
			n, _ := strconv.Atoi(p)
			pids = append(pids, n)
		}
	}
	if len(pids) < 4 {
		t.Fatalf("found %d fleet processes, want at least 4 (2 assigned, 2 pooled)", len(pids))
	}
	env.Stop()
	for _, p := range pids {
		if ProcAlive(p) {
			t.Errorf("process %d survived the daemon", p)
		}
	}
	if left := CgroupLeftovers(t, cfg.Sandbox.CgroupParent); len(left) != 0 {
		t.Errorf("cgroups left: %v", left)
	}
	for _, root := range append(mustGlob(t, "/sys/fs/cgroup/*"), "/sys/fs/cgroup") {
		if _, err := os.Stat(filepath.Join(root, cfg.Sandbox.CgroupParent)); err == nil {
			t.Errorf("parent cgroup left in %s", root)
		}
	}
	if left := StateLeftovers(cfg.Sandbox.StateDir); len(left) != 0 {
		t.Errorf("state dirs left: %v", left)
	}
}

func TestMetricsScrapeCleanly(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 1
	cfg.Sandbox.MemoryBudgetBytes = 2 << 30
	env := Start(t, cfg)
	waitPoolFull(t, env, 1)
	env.PutWebtask("m", "hello", helloCode, nil)
	for range 3 {
		MustStatus(t, env.Call("GET", "/api/run/m/hello", "", nil), 200, "run")
	}
	fams := scrape(t, env)
	for _, name := range []string{
		"webtaskd_invocations_total", "webtaskd_invocation_duration_seconds", "webtaskd_pool_size",
		"webtaskd_sandboxes", "webtaskd_ooms_total", "webtaskd_timeouts_total", "webtaskd_fleet_memory_bytes",
	} {
		if fams[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}
	if v := sumMetric(fams, "webtaskd_invocations_total", map[string]string{"served": "pooled"}); v != 1 {
		t.Errorf("pooled invocations = %v, want 1", v)
	}
	if v := sumMetric(fams, "webtaskd_invocations_total", map[string]string{"served": "warm"}); v != 2 {
		t.Errorf("warm invocations = %v, want 2", v)
	}
	if v := sumMetric(fams, "webtaskd_fleet_memory_budget_bytes", nil); v != 2<<30 {
		t.Errorf("budget = %v, want 2 GiB", v)
	}
	if v := sumMetric(fams, "webtaskd_sandboxes", map[string]string{"state": "running"}); v != 1 {
		t.Errorf("running sandboxes = %v, want 1", v)
	}
	// The budget is the parent cgroup's memory limit: v1 memory.limit_in_bytes, else v2 memory.max.
	raw, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", cfg.Sandbox.CgroupParent, "memory.limit_in_bytes"))
	if err != nil {
		var err2 error
		if raw, err2 = os.ReadFile(filepath.Join("/sys/fs/cgroup", cfg.Sandbox.CgroupParent, "memory.max")); err2 != nil {
			t.Fatalf("parent cgroup memory limit: v1: %v; v2: %v", err, err2)
		}
	}
	if strings.TrimSpace(string(raw)) != strconv.Itoa(2<<30) {
		t.Errorf("parent memory limit = %s, want 2 GiB", raw)
	}
}

func scrape(t *testing.T, env *Env) map[string]*dtoFamily {
	t.Helper()
	r := env.Call("GET", "/metrics", "", nil)
	MustStatus(t, r, 200, "GET /metrics")
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// sumMetric sums counter, gauge and histogram-count values of family name
// whose labels include want.
func sumMetric(fams map[string]*dtoFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	var sum float64
	for _, m := range f.GetMetric() {
		ok := true
		for k, v := range want {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			ok = ok && found
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type dtoFamily = dto.MetricFamily
