package sandbox

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/webtaskd/webtaskd/rootfs"
	"github.com/webtaskd/webtaskd/sandbox/agent"
)

const (
	// stdioLineMaxBytes caps one line of the runtime's raw stdout/stderr
	// forwarded to OnLog (output the agent could not attribute).
	stdioLineMaxBytes = 4096
	// stdioTotalMaxBytes caps the raw stdout/stderr forwarded per sandbox.
	stdioTotalMaxBytes = 1 << 20
)

// newID returns a fresh sandbox id (libcontainer id and leaf cgroup name).
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "wt-" + hex.EncodeToString(b[:])
}

// startSandbox creates and boots one libcontainer sandbox and waits
// (bounded by ctx) for its agent to be ready. Errors wrap ErrStart.
func (h *lcHost) startSandbox(ctx context.Context, o StartOptions) (_ *lcSandbox, retErr error) {
	id := newID()
	began := time.Now()
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if h.room != nil {
		release, err := h.room.await(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	spec := SpecOptions{ID: id, CgroupParent: h.cgroupParent, Layout: h.layout, Limits: o.Limits, Rlimits: h.rlimits, Background: o.Container == ""}
	cfg, err := BuildConfig(spec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	undoCgroup := func() {}
	if spec.Background {
		undo, err := h.fleet.presetBackground(id)
		if err != nil {
			// The boot goes on at the default weight until init is ready.
			log.Debug("sandbox cgroup not preset to the lowest CPU weight", "sandbox", id, "err", err)
		} else {
			undoCgroup = undo
		}
	}
	// libcontainer's part of the boot blocks in system calls: see
	// syscallProcs. Node's part (waiting for ready) uses the netpoller.
	leaveProcs := processProcs().enter()
	defer leaveProcs()
	rt, err := libcontainer.Create(h.root, id, cfg)
	created := time.Now()
	if err != nil {
		undoCgroup()
		return nil, fmt.Errorf("%w: create: %w", ErrStart, err)
	}
	s := &lcSandbox{
		id:         id,
		container:  o.Container,
		limits:     o.Limits,
		createdAt:  time.Now(),
		log:        log.With("sandbox", id), // the container is added per line: a pooled sandbox gets one later
		onLog:      o.OnLog,
		rt:         rt,
		bootLimits: o.Limits,
		done:       make(chan struct{}),
	}
	s.lastUsedAt = s.createdAt
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
		if retErr != nil {
			_ = s.Destroy()
		}
	}()

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		close(s.done)
		return nil, fmt.Errorf("%w: socketpair: %w", ErrStart, err)
	}
	parentEnd := os.NewFile(uintptr(fds[0]), "agent-daemon")
	childEnd := os.NewFile(uintptr(fds[1]), "agent-runtime")
	closers = append(closers, parentEnd, childEnd)
	conn, err := net.FileConn(parentEnd)
	if err != nil {
		close(s.done)
		return nil, fmt.Errorf("%w: socket: %w", ErrStart, err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_ = conn.Close()
		close(s.done)
		return nil, fmt.Errorf("%w: pipe: %w", ErrStart, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		_ = conn.Close()
		_ = outR.Close()
		_ = outW.Close()
		close(s.done)
		return nil, fmt.Errorf("%w: pipe: %w", ErrStart, err)
	}
	closers = append(closers, outW, errW)

	heapMB := max(o.Limits.MemoryMB*3/4, 16)
	layout := h.layout
	proc := &libcontainer.Process{
		Args: append(append([]string{
			layout.InitPath, "--", layout.NodePath,
			"--max-old-space-size=" + strconv.Itoa(heapMB),
		}, seedArgs(h.v8Seed)...), layout.AgentPath),
		Env: []string{
			"PATH=/usr/bin:/bin",
			"NODE_PATH=" + rootfs.SandboxModulesPath,
			"HOME=/tmp",
		},
		UID:        SandboxUID,
		GID:        SandboxGID,
		Cwd:        "/tmp",
		Stdout:     outW,
		Stderr:     errW,
		ExtraFiles: []*os.File{childEnd},
		Init:       true,
	}
	runErr := rt.Run(proc)
	ran := time.Now()
	leaveProcs()
	// The runtime holds its own copies now.
	_ = childEnd.Close()
	_ = outW.Close()
	_ = errW.Close()
	if runErr != nil {
		_ = conn.Close()
		_ = outR.Close()
		_ = errR.Close()
		close(s.done)
		return nil, fmt.Errorf("%w: run: %w", ErrStart, runErr)
	}
	s.proc = proc
	s.pid, _ = proc.Pid()
	if cg, err := loadSandboxCgroup(sandboxCgroupPath(h.cgroupParent, id)); err == nil {
		s.cg = cg
	} else {
		s.log.Warn("sandbox: cgroup not readable: no memory figures", "err", err)
	}
	var oomCh <-chan struct{}
	if ch, err := rt.NotifyOOM(); err == nil {
		oomCh = ch
	} else {
		s.log.Warn("sandbox: no OOM notifications", "err", err)
	}

	var logBudget atomic.Int64
	logBudget.Store(stdioTotalMaxBytes)
	var stdio sync.WaitGroup
	stdio.Add(2)
	go s.pumpStdio(&stdio, outR, "stdout", &logBudget)
	go s.pumpStdio(&stdio, errR, "stderr", &logBudget)

	var clientOpts []agent.Option
	if o.OnStorage != nil {
		clientOpts = append(clientOpts, agent.WithStorage(o.OnStorage, 0))
	}
	if o.OnToken != nil {
		clientOpts = append(clientOpts, agent.WithTokens(o.OnToken, 0))
	}
	s.client = agent.NewClient(conn, s.emit, clientOpts...)
	go s.wait(oomCh, &stdio)

	readyErr := make(chan error, 1)
	go func() {
		_, err := s.client.WaitReady(ctx)
		readyErr <- err
	}()
	select {
	case err := <-readyErr:
		if err != nil {
			return nil, fmt.Errorf("%w: runtime not ready: %w", ErrStart, err)
		}
	case <-s.done:
		return nil, fmt.Errorf("%w: runtime exited during boot: %w", ErrStart, s.exitErr)
	}
	// The agent answered: node runs, and is tini's only child yet.
	s.nodePid = firstChild(s.pid)
	if h.ksm != nil { // pages are shared
		h.ksm.booted()
		if h.mergeChecked.CompareAndSwap(false, true) {
			checkMerging(s.nodePid, s.log)
		}
	}
	if o.Container == "" {
		s.warmUp(ctx)
	}
	// The boot's steps: libcontainer's config and state, its runtime up
	// to tini's exec, node's boot and the agent's until ready.
	s.log.Debug("sandbox ready", "pid", s.pid, "node_pid", s.nodePid,
		"create_ms", ms(created.Sub(began)), "run_ms", ms(ran.Sub(created)), "node_ms", ms(time.Since(ran)))
	return s, nil
}

// warmUpCode is what a pooled sandbox runs once before it waits in the
// pool: the agent's invocation path (dispatch, compile, ctx, result) is
// then compiled and its first call as fast as the next ones. It touches
// no global state a webtask could see.
const warmUpCode = `module.exports = (ctx, cb) => cb(null, {});`

var warmUpHash = func() string {
	sum := sha256.Sum256([]byte(warmUpCode))
	return hex.EncodeToString(sum[:])
}()

// warmUp runs warmUpCode once in a pooled sandbox (not counted as an
// invocation: no container is served yet). A failure is only logged: the
// sandbox is as usable as without it, and a dead one is noticed by its
// watcher.
func (s *lcSandbox) warmUp(ctx context.Context) {
	resp, err := s.client.Do(ctx, &agent.Request{
		ReqID: "warm-up", Container: "", CodeHash: warmUpHash, Code: warmUpCode,
		Method: "GET", URL: "/", Headers: map[string][]string{}, PB: 2,
	})
	switch {
	case err != nil:
		s.log.Warn("sandbox: warm-up call failed", "err", err)
	case resp.Stream != nil:
		resp.Stream.Close()
	}
}

// pumpStdio forwards the runtime's raw output (not attributable to an
// invocation) as id-0 log lines, capped per line and in total.
func (s *lcSandbox) pumpStdio(wg *sync.WaitGroup, r *os.File, stream string, budget *atomic.Int64) {
	defer wg.Done()
	defer r.Close()
	br := bufio.NewReaderSize(r, stdioLineMaxBytes)
	for {
		line, isPrefix, err := br.ReadLine()
		if len(line) > 0 || (err == nil && !isPrefix) {
			msg := string(line)
			if isPrefix {
				msg += " [webtaskd: line truncated]"
				// Drop the rest of the over-long line.
				for isPrefix && err == nil {
					_, isPrefix, err = br.ReadLine()
				}
			}
			if left := budget.Add(-int64(len(line))); left >= 0 {
				s.emit(agent.LogLine{ID: 0, Stream: stream, Msg: msg})
			}
		}
		if err != nil {
			return
		}
	}
}

// ms is d in milliseconds, for logs.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
