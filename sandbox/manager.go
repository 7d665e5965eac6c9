package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/webtaskd/webtaskd/rootfs"
	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// Manager errors.
var (
	// ErrNotFound: no live sandbox has that id.
	ErrNotFound = errors.New("sandbox not found")
	// ErrClosed: the Manager was closed.
	ErrClosed = errors.New("sandbox manager closed")
	// ErrConfig: the Manager configuration is invalid.
	ErrConfig = errors.New("invalid sandbox configuration")
)

// Defaults of Config.
const (
	DefaultStateDir      = "/run/webtaskd"
	DefaultCgroupParent  = "/webtaskd"
	DefaultIdleTimeout   = 5 * time.Minute
	DefaultExecTimeout   = 30 * time.Second
	DefaultStartTimeout  = 10 * time.Second
	DefaultLogLimitBytes = 64 << 10
)

// Config configures a Manager.
type Config struct {
	// StateDir holds libcontainer's state (StateDir/containers) and the
	// rootfs skeleton (StateDir/rootfs). Must not contain the daemon binary.
	StateDir string
	// CgroupParent is the absolute parent cgroup of every sandbox.
	CgroupParent string
	// Limits are the limits of every sandbox.
	Limits Limits
	// IdleTimeout: a sandbox idle this long is destroyed.
	IdleTimeout time.Duration
	// ExecTimeout bounds one invocation; on expiry the call fails with
	// ErrTimeout and the sandbox is recycled.
	ExecTimeout time.Duration
	// StartTimeout bounds boot until the runtime agent is ready.
	StartTimeout time.Duration
	// LogLimitBytes caps each invocation's user output (set on every Request).
	LogLimitBytes int
	// Rootfs configures the sandbox root skeleton.
	Rootfs rootfs.Options
	// Logger receives the manager's logs (default slog.Default()).
	Logger *slog.Logger
	// OnLog receives user output of every sandbox; may be nil.
	OnLog func(container string, line agent.LogLine)
}

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.CgroupParent == "" {
		c.CgroupParent = DefaultCgroupParent
	}
	if c.Limits.MemoryMB == 0 {
		c.Limits.MemoryMB = DefaultLimits.MemoryMB
	}
	if c.Limits.CPUs == 0 {
		c.Limits.CPUs = DefaultLimits.CPUs
	}
	if c.Limits.Pids == 0 {
		c.Limits.Pids = DefaultLimits.Pids
	}
	if c.Limits.TmpMB == 0 {
		c.Limits.TmpMB = DefaultLimits.TmpMB
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ExecTimeout == 0 {
		c.ExecTimeout = DefaultExecTimeout
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.LogLimitBytes == 0 {
		c.LogLimitBytes = DefaultLogLimitBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks a Config (after SetDefaults).
func (c Config) Validate() error {
	switch {
	case !filepath.IsAbs(c.StateDir) || filepath.Clean(c.StateDir) == "/":
		return fmt.Errorf("%w: state dir must be an absolute path other than /: %q", ErrConfig, c.StateDir)
	case !filepath.IsAbs(c.CgroupParent) || filepath.Clean(c.CgroupParent) == "/":
		return fmt.Errorf("%w: cgroup parent must be an absolute path other than /: %q", ErrConfig, c.CgroupParent)
	case c.Limits.MemoryMB < 32:
		return fmt.Errorf("%w: memory limit must be at least 32 MiB", ErrConfig)
	case c.Limits.CPUs <= 0 || c.Limits.CPUs > 1024:
		return fmt.Errorf("%w: cpus must be in (0, 1024]", ErrConfig)
	case c.Limits.Pids < 8:
		return fmt.Errorf("%w: pids limit must be at least 8 (node uses ~7 tasks)", ErrConfig)
	case c.Limits.TmpMB < 1:
		return fmt.Errorf("%w: tmp size must be at least 1 MiB", ErrConfig)
	case c.IdleTimeout <= 0 || c.ExecTimeout <= 0 || c.StartTimeout <= 0:
		return fmt.Errorf("%w: timeouts must be positive", ErrConfig)
	case c.LogLimitBytes < 0:
		return fmt.Errorf("%w: log limit must not be negative", ErrConfig)
	}
	return nil
}

// entry is the manager's record of one webtask container's sandbox. ready
// is closed once sb or err is set (singleflight start).
type entry struct {
	container string
	ready     chan struct{}
	sb        *container
	err       error
	// inFlight and lastUsedAt are guarded by Manager.mu; the idle reaper
	// only takes entries with no call in flight.
	inFlight   int
	lastUsedAt time.Time
}

// Manager owns every sandbox of the daemon: one per webtask container,
// started on first use, recycled on timeout or crash, reaped when idle.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	layout *rootfs.Layout
	root   string // libcontainer state root

	mu      sync.Mutex
	entries map[string]*entry // by webtask container
	closed  bool

	stop       chan struct{}
	reaperDone chan struct{}
	watchers   sync.WaitGroup
}

// NewManager validates cfg, sweeps sandboxes left by a previous daemon,
// builds the rootfs skeleton and starts the idle reaper.
func NewManager(cfg Config) (*Manager, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.StateDir = filepath.Clean(cfg.StateDir)
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: state dir: %w", err)
	}
	// The sandbox's mapped root walks the rootfs path: keep it traversable.
	if err := os.Chmod(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: state dir: %w", err)
	}
	if exe, err := os.Executable(); err == nil {
		exeDir := filepath.Dir(exe)
		if within(cfg.StateDir, exeDir) || within(exeDir, cfg.StateDir) {
			// runc seals /proc/self/exe with an overlay over both dirs; nested
			// they fail (ELOOP) and it copies the binary on every start.
			cfg.Logger.Warn("sandbox state dir and daemon binary dir nest: every sandbox start copies the binary",
				"state_dir", cfg.StateDir, "binary_dir", exeDir)
		}
	}
	if err := Sweep(cfg.StateDir, cfg.CgroupParent, cfg.Logger); err != nil {
		return nil, fmt.Errorf("sandbox: sweeping leftovers: %w", err)
	}
	root := filepath.Join(cfg.StateDir, "containers")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox: state dir: %w", err)
	}
	layout, err := rootfs.Build(filepath.Join(cfg.StateDir, "rootfs"), cfg.Rootfs)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	m := &Manager{
		cfg:        cfg,
		log:        cfg.Logger,
		layout:     layout,
		root:       root,
		entries:    map[string]*entry{},
		stop:       make(chan struct{}),
		reaperDone: make(chan struct{}),
	}
	go m.reaper()
	return m, nil
}

// Invoke runs req in container's sandbox, starting one if needed
// (concurrent first calls start one sandbox). It applies ExecTimeout; on
// timeout (ErrTimeout) or a crash (ErrCrashed, ErrOOM) the sandbox is
// destroyed and the next call gets a fresh one.
func (m *Manager) Invoke(ctx context.Context, container string, req *agent.Request) (*agent.Response, error) {
	if req.Container == "" {
		req.Container = container
	} else if req.Container != container {
		return nil, fmt.Errorf("%w: request for container %q sent to container %q", ErrConfig, req.Container, container)
	}
	e, err := m.acquire(ctx, container)
	if err != nil {
		return nil, err
	}
	defer m.release(e)
	req.LogLimitBytes = m.cfg.LogLimitBytes

	ctx, cancel := context.WithTimeoutCause(ctx, m.cfg.ExecTimeout, ErrTimeout)
	defer cancel()
	resp, err := e.sb.Invoke(ctx, req)
	if err == nil {
		return resp, nil
	}
	switch {
	case errors.Is(context.Cause(ctx), ErrTimeout):
		m.log.Warn("invocation timed out; recycling sandbox", "container", container, "sandbox", e.sb.ID(), "req_id", req.ReqID)
		m.retire(e)
		return nil, fmt.Errorf("%w (%s)", ErrTimeout, m.cfg.ExecTimeout)
	case errors.Is(err, ErrCrashed), errors.Is(err, ErrOOM):
		m.retire(e)
	}
	return nil, err
}

// acquire returns the ready entry of container, starting its sandbox when
// there is none, and counts the call in flight.
func (m *Manager) acquire(ctx context.Context, container string) (*entry, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, ErrClosed
		}
		e, ok := m.entries[container]
		if !ok {
			e = &entry{container: container, ready: make(chan struct{})}
			m.entries[container] = e
			go m.start(e)
		}
		e.inFlight++
		m.mu.Unlock()

		select {
		case <-e.ready:
		case <-ctx.Done():
			m.release(e)
			return nil, ctx.Err()
		}
		if e.err != nil {
			m.release(e)
			return nil, e.err
		}
		select {
		case <-e.sb.Done():
			// Died between calls; its watcher removes it. Try a fresh one.
			m.release(e)
			m.remove(e)
			continue
		default:
		}
		return e, nil
	}
}

func (m *Manager) release(e *entry) {
	m.mu.Lock()
	e.inFlight--
	e.lastUsedAt = time.Now()
	m.mu.Unlock()
}

// start boots e's sandbox (not bound to any caller's context).
func (m *Manager) start(e *entry) {
	sb, err := startSandbox(startOptions{
		Root:      m.root,
		Container: e.container,
		Spec: SpecOptions{
			CgroupParent: m.cfg.CgroupParent,
			Layout:       m.layout,
			Limits:       m.cfg.Limits,
		},
		StartTimeout: m.cfg.StartTimeout,
		Logger:       m.log,
		OnLog: func(l agent.LogLine) {
			if m.cfg.OnLog != nil {
				m.cfg.OnLog(e.container, l)
			}
		},
	})
	m.mu.Lock()
	e.sb, e.err = sb, err
	e.lastUsedAt = time.Now()
	if err != nil {
		if m.entries[e.container] == e {
			delete(m.entries, e.container)
		}
		m.mu.Unlock()
		m.log.Error("sandbox start failed", "container", e.container, "err", err)
		close(e.ready)
		return
	}
	closed := m.closed
	if !closed {
		m.watchers.Add(1)
	}
	m.mu.Unlock()
	close(e.ready)
	if closed {
		_ = sb.Destroy()
		return
	}
	m.log.Info("sandbox started", "container", e.container, "sandbox", sb.ID(), "pid", sb.pid)
	go m.watch(e)
}

// watch removes e once its runtime exited, whatever the reason, and makes
// sure its state and cgroups are gone.
func (m *Manager) watch(e *entry) {
	defer m.watchers.Done()
	select {
	case <-e.sb.Done():
	case <-m.stop:
		return // Close destroys it
	}
	m.remove(e)
	if err := e.sb.Destroy(); err != nil {
		m.log.Error("sandbox destroy failed", "sandbox", e.sb.ID(), "err", err)
	}
}

// remove drops e from the map if it is still the container's entry.
func (m *Manager) remove(e *entry) {
	m.mu.Lock()
	if m.entries[e.container] == e {
		delete(m.entries, e.container)
	}
	m.mu.Unlock()
}

// retire removes e and destroys its sandbox: the next call starts afresh.
func (m *Manager) retire(e *entry) {
	m.remove(e)
	if err := e.sb.Destroy(); err != nil {
		m.log.Error("sandbox destroy failed", "sandbox", e.sb.ID(), "err", err)
	}
}

// reaper destroys sandboxes idle longer than IdleTimeout.
func (m *Manager) reaper() {
	defer close(m.reaperDone)
	interval := m.cfg.IdleTimeout / 4
	interval = min(max(interval, 50*time.Millisecond), 30*time.Second)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			var idle []*entry
			m.mu.Lock()
			for name, e := range m.entries {
				if e.sb == nil || e.inFlight > 0 || now.Sub(e.lastUsedAt) < m.cfg.IdleTimeout {
					continue
				}
				delete(m.entries, name)
				idle = append(idle, e)
			}
			m.mu.Unlock()
			for _, e := range idle {
				m.log.Info("destroying idle sandbox", "container", e.container, "sandbox", e.sb.ID())
				if err := e.sb.Destroy(); err != nil {
					m.log.Error("sandbox destroy failed", "sandbox", e.sb.ID(), "err", err)
				}
			}
		}
	}
}

// List reports every live sandbox, ordered by container.
func (m *Manager) List() []Info {
	m.mu.Lock()
	var sbs []*container
	for _, e := range m.entries {
		if e.sb != nil {
			sbs = append(sbs, e.sb)
		}
	}
	m.mu.Unlock()
	out := make([]Info, 0, len(sbs))
	for _, sb := range sbs {
		out = append(out, sb.Info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Container < out[j].Container })
	return out
}

// Kill destroys the sandbox with the given id (not the container name).
// Calls in flight fail with ErrDestroyed.
func (m *Manager) Kill(id string) error {
	m.mu.Lock()
	var found *entry
	for name, e := range m.entries {
		if e.sb != nil && e.sb.ID() == id {
			found = e
			delete(m.entries, name)
			break
		}
	}
	m.mu.Unlock()
	if found == nil {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return found.sb.Destroy()
}

// Close stops the reaper, destroys every sandbox (bounded by ctx) and
// removes CgroupParent. Invoke fails with ErrClosed afterwards.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	var all []*entry
	for _, e := range m.entries {
		all = append(all, e)
	}
	m.entries = map[string]*entry{}
	m.mu.Unlock()
	close(m.stop)
	<-m.reaperDone

	errs := make(chan error, len(all))
	for _, e := range all {
		go func() {
			select {
			case <-e.ready:
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			}
			if e.sb == nil {
				errs <- nil
				return
			}
			errs <- e.sb.Destroy()
		}()
	}
	var errList []error
	for range all {
		select {
		case err := <-errs:
			if err != nil {
				errList = append(errList, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("sandbox: close: %w", ctx.Err())
		}
	}
	m.watchers.Wait()
	if err := removeCgroupParent(m.cfg.CgroupParent, m.log); err != nil {
		errList = append(errList, err)
	}
	return errors.Join(errList...)
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
