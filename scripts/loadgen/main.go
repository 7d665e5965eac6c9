// Command loadgen is the load driver of `make bench` (scripts/bench.sh). It
// measures, alternating between the systems under test in one run:
//
//	loadgen warm   -a URL -b URL [-deps URL] warm latency (c=1) and throughput (c=32)
//	loadgen first  -pool URL -nopool URL    time to first response of a never-seen container
//	loadgen burst  -url URL                 first responses of a burst of never-seen containers
//	loadgen memory -url URL                 memory charged per idle warm sandbox
//	loadgen ttfb   -a URL -b URL            time to the first body byte of a streamed response
//
// Each mode prints one JSON object on stdout; bench.sh renders the table.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const helloCode = `module.exports = (ctx, cb) => cb(null, { hello: 'world' });`

// streamCode writes a first chunk, then the rest on a later turn of the
// event loop: a streamed response (the ttfb mode).
const streamCode = `module.exports = (ctx, req, res) => { res.write('first'); setImmediate(() => res.end('last')); };`

// bareServer is the same functions in a bare node http server (/stream:
// streamCode's response).
const bareServer = `const fn = (ctx, cb) => cb(null, { hello: 'world' });
require('http').createServer((req, res) => {
  if (req.url === '/stream') { res.write('first'); setImmediate(() => res.end('last')); return; }
  fn({}, (err, v) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(v));
  });
}).listen(Number(process.argv[2]), '127.0.0.1');`

var client = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256, IdleConnTimeout: time.Minute},
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen warm|first|memory [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "warm":
		err = warm(os.Args[2:])
	case "first":
		err = first(os.Args[2:])
	case "burst":
		err = burst(os.Args[2:])
	case "memory":
		err = memory(os.Args[2:])
	case "ttfb":
		err = ttfb(os.Args[2:])
	case "report":
		err = report(os.Args[2:])
	case "bare-server":
		fmt.Print(bareServer)
	case "stream-code":
		fmt.Print(streamCode)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func emit(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// get does one GET and drains the body; it fails unless 200.
func get(url string, hdr *string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	if hdr != nil {
		*hdr = resp.Header.Get("X-Wt-Sandbox")
	}
	return nil
}

type dist struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
}

func summarize(d []time.Duration) dist {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	q := func(p float64) float64 {
		if len(d) == 0 {
			return 0
		}
		i := int(p * float64(len(d)-1))
		return float64(d[i].Microseconds()) / 1000
	}
	return dist{N: len(d), P50: q(.5), P90: q(.9), P99: q(.99)}
}

// warmupCalls is how many calls each system gets before the warm and ttfb
// modes measure. The ttfb mode's streamed webtask runs code of the agent
// that no earlier call ran (the 3-arity response), and V8 optimizes it over
// its first few hundred calls; with 100 calls of warm-up, that was part of
// the figure.
const warmupCalls = 500

// warm alternates rounds between a (webtaskd) and b (bare node): latency
// at concurrency 1, the same with a pause between calls (paced: CPUs that
// idle between calls, as under a platform's real traffic, wake slower than
// busy ones), then throughput at concurrency c.
func warm(args []string) error {
	fs := flag.NewFlagSet("warm", flag.ExitOnError)
	a := fs.String("a", "", "webtaskd run URL")
	b := fs.String("b", "", "bare node URL")
	deps := fs.String("deps", "", "webtaskd run URL of a webtask with three module dependencies (optional)")
	rounds := fs.Int("rounds", 5, "alternating rounds")
	n := fs.Int("n", 2000, "sequential calls per round and system")
	c := fs.Int("c", 32, "concurrency of the throughput test")
	d := fs.Duration("d", 2*time.Second, "duration of one throughput round")
	gap := fs.Duration("gap", 5*time.Millisecond, "pause between the paced calls")
	paced := fs.Int("paced", 200, "paced calls per round and system (0: none)")
	_ = fs.Parse(args)
	urls := map[string]string{"webtaskd": *a, "node": *b}
	names := []string{"webtaskd", "node"}
	if *deps != "" {
		urls["webtaskd_deps"] = *deps
		names = append(names, "webtaskd_deps")
	}
	lat, lgap := map[string][]time.Duration{}, map[string][]time.Duration{}
	thr := map[string][]float64{}
	for _, u := range urls { // warm up connections and JIT
		for range warmupCalls {
			if err := get(u, nil); err != nil {
				return err
			}
		}
	}
	for r := 0; r < *rounds; r++ {
		for _, name := range names {
			u := urls[name]
			for range *n {
				t := time.Now()
				if err := get(u, nil); err != nil {
					return err
				}
				lat[name] = append(lat[name], time.Since(t))
			}
			for range *paced {
				time.Sleep(*gap)
				t := time.Now()
				if err := get(u, nil); err != nil {
					return err
				}
				lgap[name] = append(lgap[name], time.Since(t))
			}
			rps, err := throughput(u, *c, *d)
			if err != nil {
				return err
			}
			thr[name] = append(thr[name], rps)
		}
	}
	out := map[string]any{}
	for name := range urls {
		sort.Float64s(thr[name])
		r := map[string]any{"latency": summarize(lat[name]), "rps_median": thr[name][len(thr[name])/2], "rps_rounds": thr[name]}
		if *paced > 0 {
			r["paced_latency"], r["paced_gap_ms"] = summarize(lgap[name]), gap.Milliseconds()
		}
		out[name] = r
	}
	return emit(out)
}

// ttfb alternates rounds between a (webtaskd) and b (bare node): the time
// from sending a request to reading the first byte of its streamed body,
// at concurrency 1.
func ttfb(args []string) error {
	fs := flag.NewFlagSet("ttfb", flag.ExitOnError)
	a := fs.String("a", "", "webtaskd run URL of streamCode")
	b := fs.String("b", "", "bare node URL of the stream route")
	rounds := fs.Int("rounds", 5, "alternating rounds")
	n := fs.Int("n", 500, "sequential calls per round and system")
	warmup := fs.Int("warmup", warmupCalls, "calls per system before measuring")
	_ = fs.Parse(args)
	urls := map[string]string{"webtaskd": *a, "node": *b}
	first := func(u string) (time.Duration, error) {
		t := time.Now()
		resp, err := client.Get(u)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var one [1]byte
		if _, err := io.ReadFull(resp.Body, one[:]); err != nil || resp.StatusCode != 200 {
			return 0, fmt.Errorf("GET %s: %d %v", u, resp.StatusCode, err)
		}
		d := time.Since(t)
		_, err = io.Copy(io.Discard, resp.Body)
		return d, err
	}
	lat := map[string][]time.Duration{}
	for _, u := range urls { // warm up connections and JIT
		for range *warmup {
			if _, err := first(u); err != nil {
				return err
			}
		}
	}
	for r := 0; r < *rounds; r++ {
		for _, name := range []string{"webtaskd", "node"} {
			for range *n {
				d, err := first(urls[name])
				if err != nil {
					return err
				}
				lat[name] = append(lat[name], d)
			}
		}
	}
	return emit(map[string]dist{"webtaskd": summarize(lat["webtaskd"]), "node": summarize(lat["node"])})
}

func throughput(u string, c int, d time.Duration) (float64, error) {
	var n atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := get(u, nil); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}

// daemon is a webtaskd under test.
type daemon struct{ base, token string }

func newDaemon(base, dataDir string) (*daemon, error) {
	raw, err := os.ReadFile(filepath.Join(dataDir, "master.token"))
	if err != nil {
		return nil, err
	}
	return &daemon{base: strings.TrimRight(base, "/"), token: strings.TrimSpace(string(raw))}, nil
}

// daemonFlags registers -url and -data (the daemon's base URL and data
// dir) on fs and returns what opens the daemon once fs is parsed.
func daemonFlags(fs *flag.FlagSet) func() (*daemon, error) {
	base := fs.String("url", "", "daemon base URL")
	data := fs.String("data", "", "its data dir (master.token)")
	return func() (*daemon, error) { return newDaemon(*base, *data) }
}

func (d *daemon) do(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, d.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

type status struct {
	Fleet struct {
		PoolTarget int            `json:"pool_target"`
		PoolReady  int            `json:"pool_ready"`
		Sandboxes  map[string]int `json:"sandboxes"`
		Fleet      *struct {
			MemoryBytes uint64 `json:"memory_bytes"`
			OOMKills    uint64 `json:"oom_kills"`
		} `json:"fleet"`
	} `json:"fleet"`
}

func (d *daemon) waitPool() error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st status
		if err := d.do("GET", "/api/admin/status", nil, &st); err != nil {
			return err
		}
		if st.Fleet.PoolReady >= st.Fleet.PoolTarget {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("pool did not refill within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// firstCall creates a webtask in a never-seen container and times its
// first call; the sandbox is killed afterwards.
func (d *daemon) firstCall(container string) (time.Duration, string, error) {
	if err := d.do("PUT", "/api/webtask/"+container+"/hello", map[string]string{"code": helloCode}, nil); err != nil {
		return 0, "", err
	}
	var served string
	t := time.Now()
	if err := get(d.base+"/api/run/"+container+"/hello", &served); err != nil {
		return 0, "", err
	}
	el := time.Since(t)
	var list []struct {
		ID        string `json:"id"`
		Container string `json:"container"`
	}
	if err := d.do("GET", "/api/admin/sandboxes", nil, &list); err != nil {
		return 0, "", err
	}
	for _, s := range list {
		if s.Container == container {
			_ = d.do("DELETE", "/api/admin/sandboxes/"+s.ID, nil, nil)
		}
	}
	return el, served, nil
}

// spawnNode times spawning the bare node server until its first response.
func spawnNode(node, script string, port int) (time.Duration, error) {
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	t := time.Now()
	cmd := exec.Command(node, script, strconv.Itoa(port))
	// The environment a sandbox's node gets (sandbox/boot_linux.go), not the
	// caller's: NODE_OPTIONS or NODE_EXTRA_CA_CERTS there change what node
	// does at startup (a CA bundle in NODE_EXTRA_CA_CERTS is parsed before
	// any script runs: it more than doubled this spawn on the bench machine).
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/tmp"}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := t.Add(10 * time.Second)
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			conn.Close()
			if resp, err := c.Get(url); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return time.Since(t), nil
				}
			}
		}
		if time.Now().After(deadline) {
			return 0, errors.New("bare node did not answer within 10s")
		}
		time.Sleep(200 * time.Microsecond) // polling a port: no other signal
	}
}

// first alternates: never-seen container with the pool, with the pool
// empty (a daemon with --pool-size 0), and spawning bare node.
func first(args []string) error {
	fs := flag.NewFlagSet("first", flag.ExitOnError)
	pool := fs.String("pool", "", "base URL of the daemon with a pool")
	poolData := fs.String("pool-data", "", "its data dir (master.token)")
	nopool := fs.String("nopool", "", "base URL of the daemon without a pool")
	nopoolData := fs.String("nopool-data", "", "its data dir")
	node := fs.String("node", "node", "node binary")
	script := fs.String("script", "", "bare server script")
	port := fs.Int("port", 18790, "port for the bare node server")
	n := fs.Int("n", 20, "rounds")
	_ = fs.Parse(args)
	dp, err := newDaemon(*pool, *poolData)
	if err != nil {
		return err
	}
	dn, err := newDaemon(*nopool, *nopoolData)
	if err != nil {
		return err
	}
	var withPool, noPool, bare []time.Duration
	servedPool, servedNoPool := map[string]int{}, map[string]int{}
	for i := range *n {
		if err := dp.waitPool(); err != nil {
			return err
		}
		d, s, err := dp.firstCall(fmt.Sprintf("first-pool-%d-%d", os.Getpid(), i))
		if err != nil {
			return err
		}
		withPool = append(withPool, d)
		servedPool[s]++
		// The pooled daemon refills after that call: the cold start and
		// the bare spawn are timed once it is done, not beside its boot.
		if err := dp.waitPool(); err != nil {
			return err
		}
		d, s, err = dn.firstCall(fmt.Sprintf("first-cold-%d-%d", os.Getpid(), i))
		if err != nil {
			return err
		}
		noPool = append(noPool, d)
		servedNoPool[s]++
		d, err = spawnNode(*node, *script, *port)
		if err != nil {
			return err
		}
		bare = append(bare, d)
	}
	return emit(map[string]any{
		"pool": summarize(withPool), "pool_served": servedPool,
		"nopool": summarize(noPool), "nopool_served": servedNoPool,
		"node_spawn": summarize(bare),
	})
}

// report renders the three JSON results as the markdown table of
// docs/PERFORMANCE.md, with the targets and the ratios.
func report(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	wf := fs.String("warm", "", "warm result")
	ff := fs.String("first", "", "first result")
	mf := fs.String("memory", "", "memory result")
	tf := fs.String("ttfb", "", "ttfb result")
	bf := fs.String("burst", "", "burst result")
	msf := fs.String("memory-shared", "", "memory result with --share-pages (optional)")
	ksmd := fs.Float64("ksmd-cpu", 0, "ksmd's CPU (% of one CPU) while the --share-pages sandboxes idle")
	_ = fs.Parse(args)
	var w map[string]struct {
		Latency dist    `json:"latency"`
		Paced   *dist   `json:"paced_latency"`
		GapMS   int64   `json:"paced_gap_ms"`
		RPS     float64 `json:"rps_median"`
	}
	var f struct {
		Pool, Nopool, NodeSpawn dist `json:"-"`
	}
	var fr map[string]json.RawMessage
	var m, ms memResult
	var tt map[string]dist
	var b burstResult
	files := map[string]any{*wf: &w, *ff: &fr, *mf: &m, *tf: &tt, *bf: &b}
	if *msf != "" {
		files[*msf] = &ms
	}
	for path, v := range files {
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	for k, dst := range map[string]*dist{"pool": &f.Pool, "nopool": &f.Nopool, "node_spawn": &f.NodeSpawn} {
		if err := json.Unmarshal(fr[k], dst); err != nil {
			return fmt.Errorf("first.%s: %w", k, err)
		}
	}
	wt, nd := w["webtaskd"], w["node"]
	ok := func(b bool) string {
		if b {
			return "met"
		}
		return "**missed**"
	}
	fmt.Printf("| measure | webtaskd | bare node | ratio / difference | target | |\n|---|---|---|---|---|---|\n")
	diff := wt.Latency.P50 - nd.Latency.P50
	fmt.Printf("| warm latency p50, c=1 | %.3f ms | %.3f ms | +%.3f ms | <= node + 0.1 ms | %s |\n", wt.Latency.P50, nd.Latency.P50, diff, ok(diff <= 0.1))
	fmt.Printf("| warm latency p99, c=1 | %.3f ms | %.3f ms | +%.3f ms | - | |\n", wt.Latency.P99, nd.Latency.P99, wt.Latency.P99-nd.Latency.P99)
	if wt.Paced != nil && nd.Paced != nil {
		fmt.Printf("| warm latency p50 / p99, c=1, one call every %d ms (idle CPUs between calls) | %.3f / %.3f ms | %.3f / %.3f ms | +%.3f ms | - | |\n",
			wt.GapMS, wt.Paced.P50, wt.Paced.P99, nd.Paced.P50, nd.Paced.P99, wt.Paced.P50-nd.Paced.P50)
	}
	r := wt.RPS / nd.RPS
	fmt.Printf("| warm throughput, c=32 | %.0f req/s | %.0f req/s | %.2fx | >= 0.7x | %s |\n", wt.RPS, nd.RPS, r, ok(r >= 0.7))
	tw, tn := tt["webtaskd"], tt["node"]
	fmt.Printf("| time to first byte, streamed response, c=1 (p50 / p99) | %.3f / %.3f ms | %.3f / %.3f ms | +%.3f ms | <= node + 0.2 ms | %s |\n",
		tw.P50, tw.P99, tn.P50, tn.P99, tw.P50-tn.P50, ok(tw.P50-tn.P50 <= 0.2))
	if wd, ok := w["webtaskd_deps"]; ok {
		fmt.Printf("| warm latency p50, c=1, webtask with 3 module dependencies | %.3f ms | %.3f ms | +%.3f ms | - | |\n", wd.Latency.P50, nd.Latency.P50, wd.Latency.P50-nd.Latency.P50)
		fmt.Printf("| warm throughput, c=32, webtask with 3 module dependencies | %.0f req/s | %.0f req/s | %.2fx | - | |\n", wd.RPS, nd.RPS, wd.RPS/nd.RPS)
	}
	fmt.Printf("| first response, never-seen container, pool | %.1f ms (p90 %.1f) | - | - | p50 <= 10 ms | %s |\n", f.Pool.P50, f.Pool.P90, ok(f.Pool.P50 <= 10))
	fmt.Printf("| first response, burst of %d never-seen containers one every %d ms, default flags (p50 / p99, max) | %.1f / %.1f ms (max %.1f) | - | - | p50 <= 3 ms, p99 <= 10 ms | %s |\n",
		b.Containers, b.GapMS, b.All.P50, b.All.P99, b.MaxMS, ok(b.All.P50 <= 3 && b.All.P99 <= 10))
	r = f.Nopool.P50 / f.NodeSpawn.P50
	fmt.Printf("| first response, pool empty vs spawning bare node | %.1f ms (p90 %.1f) | %.1f ms (p90 %.1f) | %.2fx | <= 0.5x | %s |\n", f.Nopool.P50, f.Nopool.P90, f.NodeSpawn.P50, f.NodeSpawn.P90, r, ok(r <= 0.5))
	m.rows("default flags", ok)
	if *msf != "" {
		ms.rows("`--share-pages`", ok)
		fmt.Printf("| the kernel's merging (ksmd) while those %d sandboxes idle | %.1f %% of a CPU | - | - | - | |\n", ms.Sandboxes, *ksmd)
	}
	fmt.Printf("\nSamples: warm latency %d calls per system (alternating rounds); first response %d per kind (alternating). "+
		"Default flags: %s With `--share-pages`: %s\n", wt.Latency.N, f.Pool.N, m.sample(), ms.sample())
	return nil
}

// memResult is the result of `loadgen memory`.
type memResult struct {
	Sandboxes int            `json:"sandboxes"`
	P50       float64        `json:"per_sandbox_mib_p50"`
	Max       float64        `json:"per_sandbox_mib_max"`
	Fleet     float64        `json:"fleet_mib"`
	PerFleet  float64        `json:"fleet_mib_per_sandbox"`
	Fit       int            `json:"fit_in_4gib"`
	StillWarm int            `json:"still_warm"`
	OOMs      uint64         `json:"oom_kills"`
	States    map[string]int `json:"states"`
	Started   float64        `json:"started_s"`
	Settle    float64        `json:"settle_s"`
	Stable    float64        `json:"stable_after_s"`
}

// rows prints the memory rows of the table; the 4 GiB row is met only when
// every sandbox answered warm afterwards, without an OOM kill.
func (m memResult) rows(how string, ok func(bool) string) {
	fmt.Printf("| memory charged per idle warm sandbox, %s (cgroup, p50 / max of %d) | %.1f / %.1f MiB | - | - | <= 5 MiB | %s |\n", how, m.Sandboxes, m.P50, m.Max, ok(m.P50 <= 5))
	fmt.Printf("| warm containers in 4 GiB, %s (parent cgroup %.0f MiB / %d = %.1f MiB each; %d answered warm afterwards, %d OOM kills) | %d | - | - | >= 800 | %s |\n",
		how, m.Fleet, m.Sandboxes, m.PerFleet, m.StillWarm, m.OOMs, m.Fit, ok(m.Fit >= 800 && m.StillWarm == m.Sandboxes && m.OOMs == 0))
}

func (m memResult) sample() string {
	if m.Sandboxes == 0 {
		return "not run."
	}
	return fmt.Sprintf("%d sandboxes started under a 4 GiB budget in %.0f s, measured %.0f s after they went idle: %d answered warm afterwards, %d OOM kills; states after idling %v.",
		m.Sandboxes, m.Started, m.Settle+m.Stable, m.StillWarm, m.OOMs, m.States)
}
