package sandbox

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/rootfs"
	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// Identity mapping of every sandbox's user namespace: container ids
// 0..65535 are host ids 100000..165535. The runtime runs as SandboxUID.
const (
	userNSHostBase = 100000
	userNSSize     = 65536
	// SandboxUID and SandboxGID are the in-sandbox ids of the runtime (the
	// "webtask" user of the skeleton's /etc/passwd).
	SandboxUID = 1000
	SandboxGID = 1000
)

const (
	// stdioLineMaxBytes caps one line of the runtime's raw stdout/stderr
	// forwarded to OnLog (output the agent could not attribute).
	stdioLineMaxBytes = 4096
	// stdioTotalMaxBytes caps the raw stdout/stderr forwarded per sandbox.
	stdioTotalMaxBytes = 1 << 20
	// destroyWait bounds how long Destroy waits for the runtime to stop.
	destroyWait = 10 * time.Second
	// crashReasonWait bounds how long a failed call waits for the exit
	// reason (OOM or crash) of a runtime whose channel closed.
	crashReasonWait = 5 * time.Second
)

// SpecOptions are the per-sandbox inputs of the libcontainer configuration.
type SpecOptions struct {
	// ID is the libcontainer id, also the leaf cgroup name.
	ID string
	// CgroupParent is the absolute parent cgroup path ("/webtaskd").
	CgroupParent string
	// Layout is the rootfs skeleton.
	Layout *rootfs.Layout
	// Limits are the resource limits of the sandbox.
	Limits types.Limits
}

// specconvMu serialises specconv.CreateLibcontainerConfig, which writes
// package-level state (its user-namespace setup) without locking.
var specconvMu sync.Mutex

// cpuPeriodUS is the CFS period used for the CPU quota, in microseconds.
const cpuPeriodUS = 100000

// BuildConfig returns the libcontainer configuration of one sandbox (see the
// package documentation of the security model).
func BuildConfig(o SpecOptions) (*configs.Config, error) {
	if o.Layout == nil {
		return nil, errors.New("sandbox: no rootfs layout")
	}
	const noExec = "noexec"
	memBytes := int64(o.Limits.MemoryMB) << 20
	swap := memBytes
	quota := int64(o.Limits.CPUs * cpuPeriodUS)
	period := uint64(cpuPeriodUS)
	pids := int64(o.Limits.Pids)

	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", noExec, "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=64k"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", noExec, "nodev", "mode=1777", "size=" + strconv.Itoa(o.Limits.TmpMB) + "m"}},
	}
	for _, b := range o.Layout.Binds {
		mounts = append(mounts, specs.Mount{
			Destination: b.Dest, Type: "bind", Source: b.Source,
			Options: []string{"bind", "ro", "nosuid", "nodev"},
		})
	}
	spec := &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: o.Layout.Dir, Readonly: true},
		Hostname: "webtask",
		Mounts:   mounts,
		Process: &specs.Process{
			User:            specs.User{UID: SandboxUID, GID: SandboxGID},
			Cwd:             "/tmp",
			NoNewPrivileges: true,
			Capabilities:    &specs.LinuxCapabilities{},
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Hard: 4096, Soft: 4096},
				{Type: "RLIMIT_CORE", Hard: 0, Soft: 0},
			},
		},
		Linux: &specs.Linux{
			CgroupsPath: filepath.Join(o.CgroupParent, o.ID),
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: userNSHostBase, Size: userNSSize}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: userNSHostBase, Size: userNSSize}},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.MountNamespace},
				{Type: specs.PIDNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.NetworkNamespace},
				{Type: specs.UserNamespace},
			},
			MaskedPaths: []string{
				"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
				"/proc/scsi", "/proc/acpi", "/proc/latency_stats", "/proc/timer_stats",
			},
			ReadonlyPaths: []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"},
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				Memory:  &specs.LinuxMemory{Limit: &memBytes, Swap: &swap},
				CPU:     &specs.LinuxCPU{Quota: &quota, Period: &period},
				Pids:    &specs.LinuxPids{Limit: &pids},
			},
			Seccomp: seccompProfile(),
		},
	}
	specconvMu.Lock()
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: o.ID, Spec: spec})
	if err == nil {
		// The device entries point at specconv's package-level defaults,
		// which it has just mutated: give this config its own copies.
		for i, d := range cfg.Devices {
			dc := *d
			cfg.Devices[i] = &dc
		}
	}
	specconvMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("sandbox: building config: %w", err)
	}
	// Explicitly no capabilities at all (nil would keep them).
	cfg.Capabilities = &configs.Capabilities{}
	cfg.NoNewPrivileges = true
	return cfg, nil
}

// seccompProfile is a denylist: everything is allowed except syscalls a
// Node runtime never needs and that widen the kernel attack surface.
func seccompProfile() *specs.LinuxSeccomp {
	eperm := uint(unix.EPERM)
	enosys := uint(unix.ENOSYS)
	denied := []string{
		"mount", "umount2", "ptrace", "kexec_load", "kexec_file_load",
		"init_module", "finit_module", "delete_module", "bpf", "perf_event_open",
		"keyctl", "add_key", "request_key", "unshare", "setns", "swapon", "swapoff",
		"reboot", "acct", "pivot_root", "chroot", "open_by_handle_at", "name_to_handle_at",
		"userfaultfd", "process_vm_readv", "process_vm_writev", "fsopen", "fsmount",
		"fsconfig", "move_mount", "open_tree", "mount_setattr", "lookup_dcookie",
		"quotactl", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
		"syslog", "vhangup", "iopl", "ioperm", "kcmp",
	}
	sc := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64},
		Syscalls: []specs.LinuxSyscall{
			{Names: denied, Action: specs.ActErrno, ErrnoRet: &eperm},
			// clone3 passes its flags in memory seccomp cannot inspect; ENOSYS
			// makes libc fall back to clone, whose flags are checked below.
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys},
		},
	}
	for _, flag := range []uint64{
		unix.CLONE_NEWNS, unix.CLONE_NEWUTS, unix.CLONE_NEWIPC, unix.CLONE_NEWUSER,
		unix.CLONE_NEWPID, unix.CLONE_NEWNET, unix.CLONE_NEWCGROUP,
	} {
		sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{
			Names: []string{"clone"}, Action: specs.ActErrno, ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: flag, ValueTwo: flag, Op: specs.OpMaskedEqual}},
		})
	}
	// personality: refuse the persona bits that weaken the address space
	// (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ADDR_COMPAT_LAYOUT, MMAP_PAGE_ZERO).
	for _, bit := range []uint64{0x0040000, 0x0400000, 0x0200000, 0x0100000} {
		sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{
			Names: []string{"personality"}, Action: specs.ActErrno, ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: bit, ValueTwo: bit, Op: specs.OpMaskedEqual}},
		})
	}
	return sc
}

// newID returns a fresh libcontainer id.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "wt-" + hex.EncodeToString(b[:])
}

// startOptions configure startSandbox.
type startOptions struct {
	// Root is libcontainer's state root.
	Root string
	// Container is the webtask container this sandbox serves.
	Container string
	Spec      SpecOptions
	// StartTimeout bounds boot until the agent is ready.
	StartTimeout time.Duration
	Logger       *slog.Logger
	// OnLog receives user output (may be nil).
	OnLog func(agent.LogLine)
	// OnStorage serves storage calls (may be nil).
	OnStorage agent.StorageHandler
	// OnToken serves create_token calls (may be nil).
	OnToken agent.TokenHandler
	// Self, when set, receives the sandbox as soon as it exists.
	Self *atomic.Pointer[container]
}

// container is the libcontainer implementation of Sandbox.
type container struct {
	id        string
	name      string // webtask container
	limits    types.Limits
	createdAt time.Time
	log       *slog.Logger

	c          *libcontainer.Container
	proc       *libcontainer.Process
	pid        int
	client     *agent.Client
	memFile    string       // cgroup file holding current memory usage
	cgroupPath string       // cgroup path below every hierarchy's root
	bootLimits types.Limits // the limits the sandbox booted with

	done      chan struct{} // closed when the runtime exited
	exitErr   error         // ErrDestroyed, ErrOOM or ErrCrashed; written before done closes
	destroyed atomic.Bool

	cleanupOnce sync.Once
	cleanupErr  error

	mu          sync.Mutex
	served      types.Served // "" while pooled
	paused      bool
	lastUsedAt  time.Time
	invocations uint64
	inFlight    int
}

// startSandbox creates and boots one sandbox and waits for its agent to be
// ready. Errors wrap ErrStart.
func startSandbox(o startOptions) (_ *container, retErr error) {
	if o.Spec.ID == "" {
		o.Spec.ID = newID()
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg, err := BuildConfig(o.Spec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	lc, err := libcontainer.Create(o.Root, o.Spec.ID, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: create: %w", ErrStart, err)
	}
	s := &container{
		id:         o.Spec.ID,
		name:       o.Container,
		limits:     o.Spec.Limits,
		createdAt:  time.Now(),
		log:        log.With("sandbox", o.Spec.ID), // the container is added per line: a pooled sandbox gets one later
		c:          lc,
		cgroupPath: sandboxCgroupPath(o.Spec.CgroupParent, o.Spec.ID),
		bootLimits: o.Spec.Limits,
		done:       make(chan struct{}),
	}
	s.lastUsedAt = s.createdAt
	if o.Self != nil {
		o.Self.Store(s)
	}
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

	heapMB := o.Spec.Limits.MemoryMB * 3 / 4
	if heapMB < 16 {
		heapMB = 16
	}
	layout := o.Spec.Layout
	proc := &libcontainer.Process{
		Args: []string{
			layout.InitPath, "--", layout.NodePath,
			"--max-old-space-size=" + strconv.Itoa(heapMB),
			layout.AgentPath,
		},
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
	runErr := lc.Run(proc)
	// The runtime holds its own copies now.
	_ = childEnd.Close()
	_ = outW.Close()
	_ = errW.Close()
	if runErr != nil {
		err := runErr
		_ = conn.Close()
		_ = outR.Close()
		_ = errR.Close()
		close(s.done)
		return nil, fmt.Errorf("%w: run: %w", ErrStart, err)
	}
	s.proc = proc
	s.pid, _ = proc.Pid()
	if st, err := lc.State(); err == nil {
		if p := st.CgroupPaths["memory"]; p != "" {
			s.memFile = filepath.Join(p, "memory.usage_in_bytes")
			if _, err := os.Stat(s.memFile); err != nil {
				s.memFile = filepath.Join(p, "memory.current")
			}
		}
	}
	var oomCh <-chan struct{}
	if ch, err := lc.NotifyOOM(); err == nil {
		oomCh = ch
	} else {
		s.log.Warn("sandbox: no OOM notifications", "err", err)
	}

	var logBudget atomic.Int64
	logBudget.Store(stdioTotalMaxBytes)
	var stdio sync.WaitGroup
	stdio.Add(2)
	go s.pumpStdio(&stdio, outR, "stdout", o.OnLog, &logBudget)
	go s.pumpStdio(&stdio, errR, "stderr", o.OnLog, &logBudget)

	var clientOpts []agent.Option
	if o.OnStorage != nil {
		clientOpts = append(clientOpts, agent.WithStorage(o.OnStorage, 0))
	}
	if o.OnToken != nil {
		clientOpts = append(clientOpts, agent.WithTokens(o.OnToken, 0))
	}
	s.client = agent.NewClient(conn, func(l agent.LogLine) {
		if o.OnLog != nil {
			o.OnLog(l)
		}
	}, clientOpts...)
	go s.wait(oomCh, &stdio)

	ctx, cancel := context.WithTimeout(context.Background(), o.StartTimeout)
	defer cancel()
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
	s.log.Debug("sandbox ready", "pid", s.pid)
	return s, nil
}

// pumpStdio forwards the runtime's raw output (not attributable to an
// invocation) as id-0 log lines, capped per line and in total.
func (s *container) pumpStdio(wg *sync.WaitGroup, r *os.File, stream string, onLog func(agent.LogLine), budget *atomic.Int64) {
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
			if left := budget.Add(-int64(len(line))); left >= 0 && onLog != nil {
				onLog(agent.LogLine{ID: 0, Stream: stream, Msg: msg})
			}
		}
		if err != nil {
			return
		}
	}
}

// wait reaps the runtime, records why it died (OOM seen through the cgroup
// before any cleanup, else a crash) and cleans the container up.
func (s *container) wait(oomCh <-chan struct{}, stdio *sync.WaitGroup) {
	state, werr := s.proc.Wait()
	oom := s.oomKilled()
	if !oom && oomCh != nil {
		select {
		case _, ok := <-oomCh:
			oom = ok
		default:
		}
	}
	switch {
	case s.destroyed.Load():
		// Killed by Destroy: calls in flight fail with ErrDestroyed.
		s.exitErr = ErrDestroyed
	case oom:
		s.exitErr = ErrOOM
	default:
		s.exitErr = ErrCrashed
	}
	if s.exitErr != ErrDestroyed {
		s.log.Warn("sandbox runtime exited", "container", s.owner(), "state", fmt.Sprint(state), "wait_err", werr, "oom", oom)
	}
	close(s.done)
	_ = s.client.Close()
	stdio.Wait()
	if err := s.cleanup(); err != nil {
		s.log.Error("sandbox cleanup failed", "container", s.owner(), "err", err)
	}
}

// oomKilled reads the memory cgroup's OOM-kill counter (cgroup v1
// memory.oom_control or v2 memory.events).
func (s *container) oomKilled() bool {
	if s.memFile == "" {
		return false
	}
	dir := filepath.Dir(s.memFile)
	for _, f := range []string{"memory.oom_control", "memory.events"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, " ")
			if ok && k == "oom_kill" {
				n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				return n > 0
			}
		}
	}
	return false
}

// cleanup destroys the libcontainer container (state dir and cgroups) once
// the runtime is gone.
func (s *container) cleanup() error {
	s.cleanupOnce.Do(func() {
		var err error
		for i := 0; i < 3; i++ {
			if err = s.c.Destroy(); err == nil {
				break
			}
			// A paused container must be thawed before Destroy.
			_ = s.c.Resume()
		}
		s.cleanupErr = err
	})
	return s.cleanupErr
}

func (s *container) ID() string { return s.id }

// owner returns the webtask container the sandbox serves ("" while
// pooled).
func (s *container) owner() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.name
}

// assign gives a pooled sandbox to a webtask container: it applies the
// container's CPU and pids limits to the sandbox's cgroup when they differ
// from those it booted with (its memory limit, and V8's heap limit that
// follows it, are fixed at boot: the Manager only assigns a pooled
// sandbox whose memory limit matches). A sandbox is assigned at most once.
func (s *container) assign(name string, l types.Limits, served types.Served) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.name != "" {
		return fmt.Errorf("sandbox %s already serves container %q", s.id, s.name)
	}
	if l.MemoryMB != s.bootLimits.MemoryMB {
		return fmt.Errorf("sandbox %s booted with %d MiB, container %q needs %d MiB", s.id, s.bootLimits.MemoryMB, name, l.MemoryMB)
	}
	if l.CPUs != s.limits.CPUs || l.Pids != s.limits.Pids {
		if err := updateSandboxCgroup(s.cgroupPath, l); err != nil {
			return fmt.Errorf("sandbox %s: applying limits: %w", s.id, err)
		}
	}
	s.name, s.limits, s.served = name, l, served
	return nil
}

// cgroupStats reads the sandbox's cgroup figures.
func (s *container) cgroupStats() (*types.CgroupStats, error) {
	return sandboxCgroupStats(s.cgroupPath)
}

func (s *container) Done() <-chan struct{} { return s.done }

// Invoke runs one invocation in the warm runtime.
func (s *container) Invoke(ctx context.Context, req *agent.Request, timeout time.Duration) (*agent.Response, error) {
	if s.destroyed.Load() {
		return nil, ErrDestroyed
	}
	select {
	case <-s.done:
		return nil, s.exitErr
	default:
	}
	s.mu.Lock()
	s.inFlight++
	s.invocations++
	s.lastUsedAt = time.Now()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.lastUsedAt = time.Now()
		s.mu.Unlock()
	}()
	resp, err := s.client.DoTimeout(ctx, req, timeout)
	if err == nil {
		return resp, nil
	}
	if errors.Is(err, agent.ErrTimeout) {
		return nil, fmt.Errorf("sandbox %s: %w", s.id, ErrTimeout)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("sandbox %s: %w", s.id, context.Cause(ctx))
	}
	// The channel failed: the runtime most likely died. Report why.
	t := time.NewTimer(crashReasonWait)
	defer t.Stop()
	select {
	case <-s.done:
		return nil, s.exitErr
	case <-t.C:
		return nil, fmt.Errorf("%w: %w", ErrCrashed, err)
	}
}

// Pause freezes the sandbox.
func (s *container) Pause() error {
	if s.destroyed.Load() {
		return ErrDestroyed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused {
		return nil
	}
	if err := s.c.Pause(); err != nil {
		return fmt.Errorf("sandbox %s: pause: %w", s.id, err)
	}
	s.paused = true
	return nil
}

// Resume thaws the sandbox.
func (s *container) Resume() error {
	if s.destroyed.Load() {
		return ErrDestroyed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.paused {
		return nil
	}
	if err := s.c.Resume(); err != nil && !errors.Is(err, libcontainer.ErrNotPaused) {
		return fmt.Errorf("sandbox %s: resume: %w", s.id, err)
	}
	s.paused = false
	return nil
}

// Destroy kills the runtime, waits (bounded) until it stopped and removes
// the container's state and cgroups. Idempotent.
func (s *container) Destroy() error {
	s.destroyed.Store(true)
	select {
	case <-s.done:
	default:
		// SIGKILL to the init of a PID namespace kills every process in it;
		// libcontainer thaws a paused cgroup for SIGKILL.
		if err := s.c.Signal(unix.SIGKILL); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
			s.log.Warn("sandbox: kill failed", "err", err)
		}
		t := time.NewTimer(destroyWait)
		defer t.Stop()
		select {
		case <-s.done:
		case <-t.C:
			return fmt.Errorf("sandbox %s: runtime did not stop within %s", s.id, destroyWait)
		}
	}
	// wait() runs the cleanup after done; run it here too so that Destroy
	// returns only once the state and cgroups are gone.
	if err := s.cleanup(); err != nil {
		return fmt.Errorf("sandbox %s: destroy: %w", s.id, err)
	}
	return nil
}

// SandboxInfo reports the sandbox's state and figures.
func (s *container) Info() types.SandboxInfo {
	s.mu.Lock()
	info := types.SandboxInfo{
		ID:          s.id,
		Container:   s.name,
		Served:      s.served,
		Pid:         s.pid,
		State:       types.SandboxRunning,
		CreatedAt:   s.createdAt,
		LastUsedAt:  s.lastUsedAt,
		Invocations: s.invocations,
		InFlight:    s.inFlight,
		Limits:      s.limits,
	}
	switch {
	case s.paused:
		info.State = types.SandboxPaused
	case s.name == "":
		info.State = types.SandboxPooled
	}
	s.mu.Unlock()
	select {
	case <-s.done:
		info.State = types.SandboxDestroyed
		return info
	default:
	}
	if s.destroyed.Load() {
		info.State = types.SandboxDestroyed
		return info
	}
	if s.memFile != "" {
		if b, err := os.ReadFile(s.memFile); err == nil {
			info.MemoryBytes, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		}
	}
	return info
}

var _ Sandbox = (*container)(nil)

// isPaused reports whether the sandbox is frozen.
func (s *container) isPaused() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused
}
