// Command soak is `make soak`: it starts a real webtaskd on loopback with a
// small --max-sandboxes, calls many containers in random order so that
// sandboxes are evicted and booted again all the time (eviction churn), and
// fails when the daemon's open fds, goroutines, RSS, live sandboxes or
// sandbox cgroups are not flat between the start (after one warm-up round)
// and the end (generous margins). Bounded in calls and time; root only.
//
//	go run ./scripts/soak -bin bin/webtaskd [-duration 2m] [-calls 20000]
//	   [-containers 24] [-max-sandboxes 4] [-concurrency 4]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const helloCode = `module.exports = (ctx, cb) => cb(null, { hello: 'world' });`

type config struct {
	bin          string
	duration     time.Duration
	calls        int
	containers   int
	maxSandboxes int
	concurrency  int
	keep         bool
}

func main() {
	var c config
	flag.StringVar(&c.bin, "bin", "bin/webtaskd", "the webtaskd binary")
	flag.DurationVar(&c.duration, "duration", 2*time.Minute, "how long the churn runs (at most)")
	flag.IntVar(&c.calls, "calls", 20000, "how many calls the churn makes (at most)")
	flag.IntVar(&c.containers, "containers", 24, "webtask containers called in random order")
	flag.IntVar(&c.maxSandboxes, "max-sandboxes", 4, "the daemon's --max-sandboxes (small: every miss evicts)")
	flag.IntVar(&c.concurrency, "concurrency", 4, "concurrent callers")
	flag.BoolVar(&c.keep, "keep", false, "keep the data dir and daemon log (printed) after the run")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "soak: FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("soak: PASS")
}

// daemon is the webtaskd the soak started.
type daemon struct {
	cmd          *exec.Cmd
	base, master string
	cgroupParent string
	exited       chan error
}

func run(c config) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (the daemon starts sandboxes)")
	}
	if c.containers <= c.maxSandboxes {
		return fmt.Errorf("-containers (%d) must exceed -max-sandboxes (%d) for eviction churn", c.containers, c.maxSandboxes)
	}
	work, err := os.MkdirTemp("", "webtaskd-soak-")
	if err != nil {
		return err
	}
	id := filepath.Base(work)[len("webtaskd-soak-"):]
	stateDir := "/run/webtaskd-soak-" + id
	defer func() {
		if c.keep {
			fmt.Println("soak: kept", work)
		} else {
			os.RemoveAll(work)
		}
		os.RemoveAll(stateDir)
	}()
	d, err := start(c, work, stateDir, "/webtaskd-soak-"+id)
	if err != nil {
		return err
	}
	defer d.stop()

	for i := 0; i < c.containers; i++ {
		body := `{"code":` + strconv.Quote(helloCode) + `}`
		if st, b, err := d.call("PUT", fmt.Sprintf("/api/webtask/soak%d/hello", i), body); err != nil || st != 200 {
			return fmt.Errorf("create webtask %d: %d %s %v", i, st, b, err)
		}
	}
	// One round over every container: the fleet is at its steady size.
	for i := 0; i < c.containers; i++ {
		if st, b, err := d.call("GET", fmt.Sprintf("/api/run/soak%d/hello", i), ""); err != nil || st != 200 {
			return fmt.Errorf("warm-up call %d: %d %s %v", i, st, b, err)
		}
	}
	before, err := d.snapshot()
	if err != nil {
		return err
	}

	stats := d.churn(c)
	after, err := d.snapshot()
	if err != nil {
		return err
	}
	fmt.Printf("soak: %d calls in %s: %d ok, %d refused (429/503), %d failed\n",
		stats.total, stats.elapsed.Round(time.Second), stats.ok, stats.busy, stats.failed)
	fmt.Printf("%-12s %10s %10s\n", "", "start", "end")
	for _, r := range [][3]string{
		{"fds", itoa(before.fds), itoa(after.fds)},
		{"goroutines", itoa(before.goroutines), itoa(after.goroutines)},
		{"rss_mib", itoa(before.rssKiB >> 10), itoa(after.rssKiB >> 10)},
		{"sandboxes", itoa(before.sandboxes), itoa(after.sandboxes)},
		{"cgroups", itoa(before.cgroups), itoa(after.cgroups)},
	} {
		fmt.Printf("%-12s %10s %10s\n", r[0], r[1], r[2])
	}

	var errs []error
	if stats.total == 0 || stats.failed*100 > stats.total {
		errs = append(errs, fmt.Errorf("%d of %d calls failed (more than 1%%)", stats.failed, stats.total))
	}
	flat := func(what string, start, end, slack int) {
		if end > start+slack {
			errs = append(errs, fmt.Errorf("%s grew from %d to %d (allowed %d more)", what, start, end, slack))
		}
	}
	flat("open fds", before.fds, after.fds, max(32, before.fds/2))
	flat("goroutines", before.goroutines, after.goroutines, max(64, before.goroutines/2))
	flat("RSS (KiB)", before.rssKiB, after.rssKiB, max(96<<10, before.rssKiB/2))
	limit := c.maxSandboxes + 2 // plus the pool and one being replaced
	if after.sandboxes > limit {
		errs = append(errs, fmt.Errorf("%d live sandboxes, more than --max-sandboxes %d plus the pool", after.sandboxes, c.maxSandboxes))
	}
	flat("sandbox cgroups", before.cgroups, after.cgroups, 2)

	// A clean stop leaves no sandbox cgroup behind.
	if err := d.stop(); err != nil {
		errs = append(errs, err)
	}
	if n := countCgroups(d.cgroupParent); n > 0 {
		errs = append(errs, fmt.Errorf("%d sandbox cgroups left after the daemon stopped", n))
	}
	return errors.Join(errs...)
}

func itoa(n int) string { return strconv.Itoa(n) }

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func start(c config, work, stateDir, cgroupParent string) (*daemon, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(work, "webtaskd.log"))
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(work, "data")
	cmd := exec.Command(c.bin, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--data-dir", dataDir, "--state-dir", stateDir, "--cgroup-parent", cgroupParent,
		"--max-sandboxes", itoa(c.maxSandboxes), "--pool-size", "1", "--freeze-after", "1s",
		"--idle-timeout", "1m", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd, base: fmt.Sprintf("http://127.0.0.1:%d", port), cgroupParent: cgroupParent, exited: make(chan error, 1)}
	go func() { d.exited <- cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get(d.base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-d.exited:
			d.exited <- err
			return nil, fmt.Errorf("daemon exited at start (%v); log: %s", err, filepath.Join(work, "webtaskd.log"))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, errors.New("daemon not healthy within 60s")
		}
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, "master.token"))
	if err != nil {
		d.stop()
		return nil, err
	}
	d.master = strings.TrimSpace(string(tok))
	return d, nil
}

// stop sends SIGTERM and waits (bounded); idempotent.
func (d *daemon) stop() error {
	if d.cmd == nil {
		return nil
	}
	defer func() { d.cmd = nil }()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return err
		}
		return nil
	case <-time.After(60 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return errors.New("daemon did not stop within 60s of SIGTERM")
	}
}

var client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func (d *daemon) call(method, path, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, d.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.master)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, b, err
}

type churnStats struct {
	total, ok, busy, failed int
	elapsed                 time.Duration
}

// churn calls random containers from c.concurrency goroutines until
// c.calls calls or c.duration.
func (d *daemon) churn(c config) churnStats {
	ctx, cancel := context.WithTimeout(context.Background(), c.duration)
	defer cancel()
	var next, ok, busy, failed atomic.Int64
	var firstErr sync.Once
	startAt := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < c.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && next.Add(1) <= int64(c.calls) {
				st, b, err := d.call("GET", fmt.Sprintf("/api/run/soak%d/hello", rand.IntN(c.containers)), "")
				switch {
				case err == nil && st == 200:
					ok.Add(1)
				case err == nil && (st == 429 || st == 503):
					busy.Add(1)
				default:
					failed.Add(1)
					firstErr.Do(func() { fmt.Fprintf(os.Stderr, "soak: first failed call: %d %s %v\n", st, bytes.TrimSpace(b), err) })
				}
			}
		}()
	}
	wg.Wait()
	return churnStats{total: int(ok.Load() + busy.Load() + failed.Load()), ok: int(ok.Load()), busy: int(busy.Load()),
		failed: int(failed.Load()), elapsed: time.Since(startAt)}
}

type snapshot struct{ fds, goroutines, rssKiB, sandboxes, cgroups int }

func (d *daemon) snapshot() (snapshot, error) {
	var s snapshot
	pid := d.cmd.Process.Pid
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(fds)
	if s.rssKiB, err = procStatusKiB(pid, "VmRSS:"); err != nil {
		return s, err
	}
	st, b, err := d.call("GET", "/metrics", "")
	if err != nil || st != 200 {
		return s, fmt.Errorf("metrics: %d %v", st, err)
	}
	if s.goroutines, err = metric(b, "go_goroutines"); err != nil {
		return s, err
	}
	st, b, err = d.call("GET", "/api/admin/sandboxes", "")
	if err != nil || st != 200 {
		return s, fmt.Errorf("sandboxes: %d %v", st, err)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(b, &list); err != nil {
		return s, fmt.Errorf("sandboxes: %v", err)
	}
	s.sandboxes = len(list)
	s.cgroups = countCgroups(d.cgroupParent)
	return s, nil
}

func procStatusKiB(pid int, field string) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}

// metric reads one unlabelled gauge from a Prometheus text exposition.
func metric(b []byte, name string) (int, error) {
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f), err
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}

// countCgroups counts the sandbox cgroups under parent: in the memory
// hierarchy on cgroup v1 (or hybrid), else in the unified hierarchy.
func countCgroups(parent string) int {
	for _, root := range []string{"/sys/fs/cgroup/memory", "/sys/fs/cgroup"} {
		des, err := os.ReadDir(filepath.Join(root, parent))
		if err != nil {
			continue
		}
		n := 0
		for _, de := range des {
			if de.IsDir() {
				n++
			}
		}
		return n
	}
	return 0
}
