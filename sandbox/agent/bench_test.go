package agent_test

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// BenchmarkDo measures one warm hello-world round trip (Go -> agent ->
// Go) over the socketpair.
func BenchmarkDo(b *testing.B) {
	h := startAgent(b)
	req := newReq(`module.exports = function (ctx, cb) { cb(null, 'hello world'); }`)
	ctx := context.Background()
	h.do(b, req) // compile once
	b.ReportAllocs()
	cpu := startCPUMeter(b, h)
	b.ResetTimer()
	defer cpu.report(b)
	for b.Loop() {
		resp, err := h.client.Do(ctx, req)
		if err != nil || resp.Status != 200 {
			b.Fatalf("Do: %v %+v", err, resp)
		}
	}
}

// BenchmarkDoParallel is BenchmarkDo with many calls in flight at once.
func BenchmarkDoParallel(b *testing.B) {
	benchParallel(b, newReq(`module.exports = function (ctx, cb) { cb(null, 'hello world'); }`))
}

// benchParallel sends req from 8 goroutines per CPU through one agent.
func benchParallel(b *testing.B, req *agent.Request) {
	h := startAgent(b)
	h.do(b, req)
	b.ReportAllocs()
	b.SetParallelism(8)
	cpu := startCPUMeter(b, h)
	b.ResetTimer()
	defer cpu.report(b)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			resp, err := h.client.Do(ctx, req)
			if err != nil || resp.Status != 200 {
				b.Errorf("Do: %v %+v", err, resp)
				return
			}
		}
	})
}

// daemonReq is what the daemon sends for `GET /api/run/bench/hello` of
// make bench: a few headers and the webtask's own token.
func daemonReq() *agent.Request {
	r := newReq(`module.exports = (ctx, cb) => cb(null, { hello: 'world' });`)
	r.Container, r.Name, r.URL, r.PB = "bench", "hello", "/api/run/bench/hello", 0
	r.Headers = map[string][]string{"host": {"127.0.0.1:18721"}, "user-agent": {"Go-http-client/1.1"}, "accept-encoding": {"gzip"}}
	r.Token = "eyJhbGciOiJIUzI1NiIsImtpZCI6IjQ4MjhjY2E2NTlmZjI5MjIifQ." + strings.Repeat("eyJ0ZW4iOiJiZW5jaCIsImp0biI6ImhlbGxvIiwian", 6) + ".Gu3V3V64wMiOElAgB21zAeqU09TlykHENnIwb6Qi-v0"
	return r
}

// BenchmarkDoParallelDaemonLike is BenchmarkDoParallel with the request
// the daemon sends for the make bench webtask.
func BenchmarkDoParallelDaemonLike(b *testing.B) {
	benchParallel(b, daemonReq())
}

// BenchmarkStreamFirstByte measures a warm streamed response: the time
// to its first chunk (ttfb-ns/op) and the whole exchange (head, two
// chunks, end).
func BenchmarkStreamFirstByte(b *testing.B) {
	h := startAgent(b)
	req := newReq(`module.exports = function (ctx, req, res) { res.write('first'); setImmediate(() => res.end('last')); };`)
	h.do(b, req) // compile once
	b.ReportAllocs()
	cpu := startCPUMeter(b, h)
	b.ResetTimer()
	defer cpu.report(b)
	b.ReportMetric(float64(firstByteLoop(b, h, req).Nanoseconds()), "ttfb-ns/op")
}

// BenchmarkFirstByteShapes times the first body byte of one warm call
// (ttfb-ns/op) by the shape of the webtask's answer: a callback's value, a
// 3-arity response ended at once (one "result"), written and ended in one
// tick, and streamed (head and first chunk, the rest a turn of the event
// loop later: make bench's streamed webtask). What a 3-arity response costs
// over a callback, and a streamed one over a complete one
// (docs/PERFORMANCE.md).
func BenchmarkFirstByteShapes(b *testing.B) {
	for _, c := range []struct{ name, code string }{
		{"callback", `module.exports = function (ctx, cb) { cb(null, 'first'); }`},
		{"end", `module.exports = function (ctx, req, res) { res.end('first'); }`},
		{"write-end", `module.exports = function (ctx, req, res) { res.write('first'); res.end('last'); }`},
		{"streamed", `module.exports = function (ctx, req, res) { res.write('first'); setImmediate(() => res.end('last')); }`},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := startAgent(b)
			req := newReq(c.code)
			h.do(b, req) // compile once
			b.ReportMetric(float64(firstByteLoop(b, h, req).Nanoseconds()), "ttfb-ns/op")
		})
	}
}

// firstByteLoop calls req until b.Loop ends and returns the mean time to
// the first body byte: a complete answer's, or the first chunk ("first")
// of a streamed one, whose rest it then reads to the end.
func firstByteLoop(b *testing.B, h *harness, req *agent.Request) time.Duration {
	ctx := context.Background()
	var ttfb time.Duration
	n := 0
	for b.Loop() {
		n++
		began := time.Now()
		resp, err := h.client.Do(ctx, req)
		if err != nil || resp.Status != 200 {
			b.Fatalf("Do: %v %+v", err, resp)
		}
		if resp.Stream == nil {
			ttfb += time.Since(began)
			continue
		}
		if p, err := resp.Stream.Next(); err != nil || string(p) != "first" {
			b.Fatalf("first chunk %q: %v", p, err)
		}
		ttfb += time.Since(began)
		if _, err := io.Copy(io.Discard, resp.Stream); err != nil {
			b.Fatalf("rest: %v", err)
		}
		resp.Stream.Close()
	}
	return ttfb / time.Duration(max(n, 1))
}

// cpuMeter reports the CPU time per operation of both ends of the channel:
// this process (the client, as the daemon) and the agent process.
type cpuMeter struct {
	agentPid      int
	self0, agent0 time.Duration
}

func startCPUMeter(b *testing.B, h *harness) *cpuMeter {
	m := &cpuMeter{agentPid: h.cmd.Process.Pid}
	m.self0, m.agent0 = selfCPU(b), procCPU(b, m.agentPid)
	return m
}

func (m *cpuMeter) report(b *testing.B) {
	n := float64(b.N)
	b.ReportMetric(float64((selfCPU(b)-m.self0).Nanoseconds())/n, "client-cpu-ns/op")
	b.ReportMetric(float64((procCPU(b, m.agentPid)-m.agent0).Nanoseconds())/n, "agent-cpu-ns/op")
}

func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is pid's user and system time (/proc/<pid>/stat, in clock
// ticks of 10 ms: meaningful over many operations only).
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("parsing /proc/%d/stat: %q", pid, s)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}
