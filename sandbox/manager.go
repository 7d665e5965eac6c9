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
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/webtaskd/webtaskd/api/types"
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
	// DefaultMaxConcurrency caps concurrent calls per container.
	DefaultMaxConcurrency = 64
	// DefaultQueueTimeout bounds the wait for a concurrency slot.
	DefaultQueueTimeout = 5 * time.Second
	// poolRetryWait is the pause after a failed pool boot.
	poolRetryWait = time.Second
)

// Config configures a Manager.
type Config struct {
	// StateDir holds libcontainer's state (StateDir/containers) and the
	// rootfs skeleton (StateDir/rootfs). Must not contain the daemon binary.
	StateDir string
	// CgroupParent is the absolute parent cgroup of every sandbox.
	CgroupParent string
	// Limits are the limits of every sandbox.
	Limits types.Limits
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
	// OnStorage serves the webtasks' ctx.storage calls (the identity comes
	// from each invocation's Request); nil: storage calls fail with 503.
	OnStorage agent.StorageHandler
	// OnToken serves the webtasks' ctx.create_token calls (the parent
	// token comes from each invocation's Request.Authority); nil: they
	// fail with 503.
	OnToken agent.TokenHandler

	// PoolSize is how many generic, pre-booted sandboxes (agent ready, no
	// user code) wait for a never-seen container; 0 disables the pool. Pool
	// sandboxes boot with Limits and serve containers whose memory limit
	// equals Limits.MemoryMB (V8's heap limit is fixed at boot).
	PoolSize int
	// MaxSandboxes caps the sandboxes assigned to containers (the pool comes
	// on top); starting one more evicts the least recently used idle one.
	// 0 means no cap.
	MaxSandboxes int
	// MemoryBudgetBytes is the memory limit of CgroupParent, which bounds the
	// whole fleet; 0 means no budget.
	MemoryBudgetBytes int64
	// FreezeAfter: a sandbox idle this long is frozen (cgroup freezer) and
	// thawed by its next call; 0 never freezes.
	FreezeAfter time.Duration
	// MaxConcurrency caps the calls running at once in one container's
	// sandbox (default DefaultMaxConcurrency); beyond it calls queue.
	MaxConcurrency int
	// QueueTimeout bounds a queued call's wait for a slot; past it the call
	// fails with ErrBusy (default DefaultQueueTimeout).
	QueueTimeout time.Duration
	// LimitsFor returns a container's limit overrides (zero fields inherit
	// Limits, ExecTimeout and MaxConcurrency); nil means none. It is called
	// when a container gets a sandbox, never on warm calls.
	LimitsFor func(container string) (types.Limits, error)
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
	if c.MaxConcurrency == 0 {
		c.MaxConcurrency = DefaultMaxConcurrency
	}
	if c.QueueTimeout == 0 {
		c.QueueTimeout = DefaultQueueTimeout
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
	case c.PoolSize < 0 || c.PoolSize > 1024:
		return fmt.Errorf("%w: pool size must be in [0, 1024]", ErrConfig)
	case c.MaxSandboxes < 0:
		return fmt.Errorf("%w: max sandboxes must not be negative", ErrConfig)
	case c.MemoryBudgetBytes != 0 && c.MemoryBudgetBytes < int64(c.Limits.MemoryMB)<<20:
		return fmt.Errorf("%w: memory budget must be 0 (none) or at least one sandbox's memory limit", ErrConfig)
	case c.FreezeAfter < 0:
		return fmt.Errorf("%w: freeze-after must not be negative", ErrConfig)
	case c.MaxConcurrency < 1 || c.QueueTimeout <= 0:
		return fmt.Errorf("%w: max concurrency and queue timeout must be positive", ErrConfig)
	}
	return nil
}

// entry is the manager's record of one webtask container's sandbox. ready
// is closed once sb or err (and limits, execTimeout, sem, served) are set:
// a singleflight start.
type entry struct {
	container   string
	ready       chan struct{}
	sb          *container
	err         error
	served      types.Served // how sb came to the container: pooled or cold
	limits      types.Limits
	execTimeout time.Duration
	sem         chan struct{} // one token per running call

	// inFlight (calls between acquire and release, queued ones included),
	// lastUsedAt and retired are guarded by Manager.mu.
	inFlight   int
	lastUsedAt time.Time
	// retired: the entry left the map; the last call out destroys sb.
	retired bool

	// fmu orders freezing (reaper) against thawing (calls): see freeze.
	fmu sync.Mutex
}

// Manager owns every sandbox of the daemon: a pool of generic pre-booted
// sandboxes, and one sandbox per webtask container taken from the pool (or
// booted) on first use, frozen when idle, recycled on timeout or crash,
// reaped after IdleTimeout, evicted (LRU) past MaxSandboxes. A sandbox
// that ran code for one container never serves another.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	layout *rootfs.Layout
	root   string // libcontainer state root
	fleet  *fleetCgroup
	met    *metrics
	served [3]servedMetrics // warm, pooled, cold

	mu      sync.Mutex
	entries map[string]*entry // by webtask container
	pool    []*container      // ready pooled sandboxes, oldest first
	// dying are sandboxes reaped or evicted but not yet destroyed: List
	// shows them until they are gone.
	dying  map[*container]struct{}
	closed bool

	refill     chan struct{} // wakes the pool filler (buffered 1)
	stop       chan struct{}
	reaperDone chan struct{}
	poolDone   chan struct{}
	watchers   sync.WaitGroup // watch, watchPooled and start goroutines
}

// servedMetrics are the pre-resolved series of one Served kind (no label
// lookup on the warm path).
type servedMetrics struct {
	kind     types.Served
	calls    prometheus.Counter
	duration prometheus.Observer
}

// NewManager validates cfg, sweeps sandboxes left by a previous daemon,
// creates the parent cgroup with its memory budget, builds the rootfs
// skeleton and starts the idle reaper and the pool filler.
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
	fleet, err := openFleetCgroup(cfg.CgroupParent, cfg.MemoryBudgetBytes)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:        cfg,
		log:        cfg.Logger,
		layout:     layout,
		root:       root,
		fleet:      fleet,
		met:        newMetrics(),
		entries:    map[string]*entry{},
		dying:      map[*container]struct{}{},
		refill:     make(chan struct{}, 1),
		stop:       make(chan struct{}),
		reaperDone: make(chan struct{}),
		poolDone:   make(chan struct{}),
	}
	for i, k := range []types.Served{types.ServedWarm, types.ServedPooled, types.ServedCold} {
		m.served[i] = servedMetrics{
			kind:     k,
			calls:    m.met.invocations.WithLabelValues(string(k)),
			duration: m.met.durations.WithLabelValues(string(k)),
		}
	}
	for _, r := range []string{failTimeout, failOOM, failCrashed, failBusy, failCapacity, failStart} {
		m.met.failures.WithLabelValues(r) // export zeros
	}
	go m.reaper()
	go m.poolLoop()
	return m, nil
}

func (m *Manager) servedMetrics(s types.Served) *servedMetrics {
	switch s {
	case types.ServedPooled:
		return &m.served[1]
	case types.ServedCold:
		return &m.served[2]
	}
	return &m.served[0]
}

// Invoke runs req in container's sandbox: the running one (warm), one
// taken from the pool (pooled) or a freshly booted one (cold); concurrent
// first calls share one. At most the container's MaxConcurrency calls run
// at once; the others queue up to QueueTimeout (then ErrBusy). It applies
// the container's exec timeout; on timeout (ErrTimeout) or a crash
// (ErrCrashed, ErrOOM) the sandbox is destroyed (calls still in flight in
// it fail with ErrDestroyed) and the next call gets a fresh one. A
// CallInfo in ctx (WithCallInfo) receives how the call was served.
func (m *Manager) Invoke(ctx context.Context, container string, req *agent.Request) (*agent.Response, error) {
	began := time.Now()
	ci := callInfoFrom(ctx)
	resp, served, err := m.invoke(ctx, container, req, ci)
	d := time.Since(began)
	if served != "" {
		sm := m.servedMetrics(served)
		sm.calls.Inc()
		sm.duration.Observe(d.Seconds())
	}
	if ci != nil {
		ci.Served, ci.Duration = served, d
	}
	return resp, err
}

func (m *Manager) invoke(ctx context.Context, container string, req *agent.Request, ci *CallInfo) (*agent.Response, types.Served, error) {
	if req.Container == "" {
		req.Container = container
	} else if req.Container != container {
		return nil, "", fmt.Errorf("%w: request for container %q sent to container %q", ErrConfig, req.Container, container)
	}
	e, served, err := m.acquire(ctx, container)
	if err != nil {
		switch {
		case errors.Is(err, ErrCapacity):
			m.met.failures.WithLabelValues(failCapacity).Inc()
		case errors.Is(err, ErrStart):
			m.met.failures.WithLabelValues(failStart).Inc()
		}
		return nil, "", err
	}
	defer m.release(e)
	if ci != nil {
		ci.SandboxID = e.sb.id
	}

	// A concurrency slot: at once when free, else queue (bounded).
	select {
	case e.sem <- struct{}{}:
	default:
		q := time.Now()
		t := time.NewTimer(m.cfg.QueueTimeout)
		select {
		case e.sem <- struct{}{}:
			t.Stop()
		case <-t.C:
			m.met.failures.WithLabelValues(failBusy).Inc()
			return nil, served, fmt.Errorf("%w (%d running, waited %s)", ErrBusy, cap(e.sem), m.cfg.QueueTimeout)
		case <-ctx.Done():
			t.Stop()
			return nil, served, ctx.Err()
		case <-e.sb.done:
			t.Stop()
			return nil, served, e.sb.exitErr
		}
		if ci != nil {
			ci.Queued = time.Since(q)
		}
	}
	defer func() { <-e.sem }()

	if m.cfg.FreezeAfter > 0 {
		e.fmu.Lock()
		err := e.sb.Resume()
		e.fmu.Unlock()
		if err != nil {
			return nil, served, err
		}
	}
	req.LogLimitBytes = m.cfg.LogLimitBytes

	// The exec timeout is a timer of the agent client (a derived context
	// per call cost more than the rest of the manager's warm path).
	resp, err := e.sb.Invoke(ctx, req, e.execTimeout)
	if err == nil {
		return resp, served, nil
	}
	switch {
	case errors.Is(err, ErrTimeout) && ctx.Err() == nil:
		m.met.timeouts.Inc()
		m.met.failures.WithLabelValues(failTimeout).Inc()
		m.log.Warn("invocation timed out; recycling sandbox", "container", container, "sandbox", e.sb.ID(), "req_id", req.ReqID)
		m.retire(e)
		return nil, served, fmt.Errorf("%w (%s)", ErrTimeout, e.execTimeout)
	case errors.Is(err, ErrOOM):
		m.met.ooms.Inc()
		m.met.failures.WithLabelValues(failOOM).Inc()
		m.retire(e)
	case errors.Is(err, ErrCrashed):
		m.met.failures.WithLabelValues(failCrashed).Inc()
		m.retire(e)
	}
	return nil, served, err
}

// acquire returns the ready entry of container, taking a pooled sandbox or
// starting one when there is none, counts the call in flight and tells
// how the call is served.
func (m *Manager) acquire(ctx context.Context, container string) (*entry, types.Served, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, "", ErrClosed
		}
		e, ok := m.entries[container]
		if !ok {
			e = &entry{container: container, ready: make(chan struct{})}
			m.entries[container] = e
			m.watchers.Add(1)
			go m.start(e)
		}
		served := types.ServedWarm
		select {
		case <-e.ready:
		default:
			served = "" // the start decides: pooled or cold
		}
		e.inFlight++
		m.mu.Unlock()

		if served == "" {
			select {
			case <-e.ready:
			case <-ctx.Done():
				m.release(e)
				return nil, "", ctx.Err()
			}
			served = e.served
		}
		if e.err != nil {
			m.release(e)
			return nil, "", e.err
		}
		select {
		case <-e.sb.done:
			// Died between calls; its watcher removes it. Try a fresh one.
			m.release(e)
			m.remove(e)
			continue
		default:
		}
		return e, served, nil
	}
}

// release ends one call of e; the last call out of a retired entry
// destroys its sandbox.
func (m *Manager) release(e *entry) {
	m.mu.Lock()
	e.inFlight--
	e.lastUsedAt = time.Now()
	last := e.retired && e.inFlight == 0 && e.sb != nil
	m.mu.Unlock()
	if last {
		m.destroy(e.sb)
	}
}

// limitsOf resolves a container's limits: the defaults with its overrides.
func (m *Manager) limitsOf(container string) (types.Limits, error) {
	l := m.cfg.Limits
	l.ExecTimeoutMS = m.cfg.ExecTimeout.Milliseconds()
	l.MaxConcurrency = m.cfg.MaxConcurrency
	if m.cfg.LimitsFor == nil {
		return l, nil
	}
	o, err := m.cfg.LimitsFor(container)
	if err != nil {
		return l, fmt.Errorf("%w: limits of container %q: %w", ErrStart, container, err)
	}
	return l.Override(o), nil
}

// start gives e a sandbox (not bound to any caller's context): from the
// pool when one fits, else a cold boot; it evicts the least recently used
// idle sandbox first when MaxSandboxes are running.
func (m *Manager) start(e *entry) {
	defer m.watchers.Done()
	fail := func(err error) {
		m.mu.Lock()
		e.err = err
		if m.entries[e.container] == e {
			delete(m.entries, e.container)
		}
		m.mu.Unlock()
		close(e.ready)
	}
	limits, err := m.limitsOf(e.container)
	if err != nil {
		m.log.Error("sandbox limits", "container", e.container, "err", err)
		fail(err)
		return
	}
	e.limits = limits
	e.execTimeout = time.Duration(limits.ExecTimeoutMS) * time.Millisecond
	e.sem = make(chan struct{}, limits.MaxConcurrency)
	if err := m.makeRoom(e); err != nil {
		fail(err)
		return
	}

	sb, served := m.takePooled(e.container, limits), types.ServedPooled
	if sb == nil {
		served = types.ServedCold
		began := time.Now()
		sb, err = startSandbox(m.startOptions(e.container, limits))
		if err != nil {
			m.log.Error("sandbox start failed", "container", e.container, "err", err)
			fail(err)
			return
		}
		m.met.starts.WithLabelValues("cold").Inc()
		m.met.startSeconds.Observe(time.Since(began).Seconds())
	}
	m.mu.Lock()
	e.sb, e.served = sb, served
	e.lastUsedAt = time.Now()
	closed := m.closed
	if !closed {
		m.watchers.Add(1)
	}
	m.mu.Unlock()
	close(e.ready)
	if closed {
		m.destroy(sb)
		return
	}
	m.log.Info("sandbox assigned", "container", e.container, "sandbox", sb.ID(), "pid", sb.pid, "served", served)
	go m.watch(e)
}

func (m *Manager) startOptions(name string, l types.Limits) startOptions {
	o := startOptions{
		Root:      m.root,
		Container: name,
		Spec: SpecOptions{
			CgroupParent: m.cfg.CgroupParent,
			Layout:       m.layout,
			Limits:       types.Limits{MemoryMB: l.MemoryMB, CPUs: l.CPUs, Pids: l.Pids, TmpMB: m.cfg.Limits.TmpMB},
		},
		StartTimeout: m.cfg.StartTimeout,
		Logger:       m.log,
		OnStorage:    m.cfg.OnStorage,
		OnToken:      m.cfg.OnToken,
	}
	if m.cfg.OnLog == nil {
		return o
	}
	if name != "" {
		o.OnLog = func(line agent.LogLine) { m.cfg.OnLog(name, line) }
		return o
	}
	// A pooled sandbox learns its container on assignment.
	o.Self = new(atomic.Pointer[container])
	o.OnLog = func(line agent.LogLine) {
		if sb := o.Self.Load(); sb != nil {
			if owner := sb.owner(); owner != "" {
				m.cfg.OnLog(owner, line)
			}
		}
	}
	return o
}

// makeRoom evicts the least recently used idle sandboxes while more than
// MaxSandboxes entries exist (e included); ErrCapacity when none is idle.
func (m *Manager) makeRoom(e *entry) error {
	if m.cfg.MaxSandboxes == 0 {
		return nil
	}
	var victims []*container
	m.mu.Lock()
	for len(m.entries) > m.cfg.MaxSandboxes {
		var lru *entry
		for _, o := range m.entries {
			if o == e || o.sb == nil || o.inFlight > 0 {
				continue
			}
			if lru == nil || o.lastUsedAt.Before(lru.lastUsedAt) {
				lru = o
			}
		}
		if lru == nil {
			m.mu.Unlock()
			for _, v := range victims {
				m.destroy(v)
			}
			return fmt.Errorf("%w (%d sandboxes, all busy)", ErrCapacity, m.cfg.MaxSandboxes)
		}
		delete(m.entries, lru.container)
		m.dying[lru.sb] = struct{}{}
		victims = append(victims, lru.sb)
	}
	m.mu.Unlock()
	for _, v := range victims {
		m.met.evictions.Inc()
		m.log.Info("evicting least recently used sandbox", "container", v.owner(), "sandbox", v.ID())
		m.destroy(v)
	}
	return nil
}

// takePooled assigns a live pooled sandbox to container, or returns nil
// when the pool is empty or its sandboxes' memory limit differs.
func (m *Manager) takePooled(name string, l types.Limits) *container {
	if m.cfg.PoolSize == 0 || l.MemoryMB != m.cfg.Limits.MemoryMB {
		return nil
	}
	for {
		m.mu.Lock()
		if len(m.pool) == 0 {
			m.mu.Unlock()
			return nil
		}
		sb := m.pool[0]
		m.pool = m.pool[1:]
		m.mu.Unlock()
		select {
		case m.refill <- struct{}{}:
		default:
		}
		select {
		case <-sb.done:
			continue // died in the pool; its watcher cleaned up
		default:
		}
		if err := sb.assign(name, l, types.ServedPooled); err != nil {
			m.log.Error("assigning pooled sandbox", "sandbox", sb.ID(), "err", err)
			m.destroy(sb)
			continue
		}
		return sb
	}
}

// poolLoop keeps PoolSize generic sandboxes booted, one boot at a time.
func (m *Manager) poolLoop() {
	defer close(m.poolDone)
	if m.cfg.PoolSize == 0 {
		return
	}
	for {
		m.mu.Lock()
		need := !m.closed && len(m.pool) < m.cfg.PoolSize
		m.mu.Unlock()
		if !need {
			select {
			case <-m.stop:
				return
			case <-m.refill:
				continue
			}
		}
		began := time.Now()
		sb, err := startSandbox(m.startOptions("", m.cfg.Limits))
		if err != nil {
			m.log.Error("pool sandbox start failed", "err", err)
			t := time.NewTimer(poolRetryWait)
			select {
			case <-m.stop:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		m.met.starts.WithLabelValues("pool").Inc()
		m.met.startSeconds.Observe(time.Since(began).Seconds())
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			m.destroy(sb)
			return
		}
		m.pool = append(m.pool, sb)
		m.watchers.Add(1)
		m.mu.Unlock()
		go m.watchPooled(sb)
	}
}

// watchPooled drops sb from the pool if its runtime dies there.
func (m *Manager) watchPooled(sb *container) {
	defer m.watchers.Done()
	select {
	case <-sb.done:
	case <-m.stop:
		return // Close destroys the pool
	}
	m.mu.Lock()
	for i, p := range m.pool {
		if p == sb {
			m.pool = append(m.pool[:i:i], m.pool[i+1:]...)
			select {
			case m.refill <- struct{}{}:
			default:
			}
			break
		}
	}
	m.mu.Unlock()
	if sb.owner() == "" {
		m.destroy(sb) // otherwise the entry's watcher does it
	}
}

// watch removes e once its runtime exited, whatever the reason, and makes
// sure its state and cgroups are gone.
func (m *Manager) watch(e *entry) {
	defer m.watchers.Done()
	select {
	case <-e.sb.done:
	case <-m.stop:
		return // Close destroys it
	}
	m.remove(e)
	m.destroy(e.sb)
}

func (m *Manager) destroy(sb *container) {
	if err := sb.Destroy(); err != nil {
		m.log.Error("sandbox destroy failed", "sandbox", sb.ID(), "err", err)
	}
	m.mu.Lock()
	delete(m.dying, sb)
	m.mu.Unlock()
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
	m.destroy(e.sb)
}

// Recycle makes container's next call get a fresh sandbox (for example
// after its limits changed): calls in flight finish in the old sandbox,
// which is destroyed when the last one returns. No-op without a sandbox.
func (m *Manager) Recycle(container string) {
	m.mu.Lock()
	e := m.entries[container]
	if e == nil {
		m.mu.Unlock()
		return
	}
	delete(m.entries, container)
	e.retired = true
	now := e.inFlight == 0 && e.sb != nil
	m.mu.Unlock()
	if now {
		m.destroy(e.sb)
	}
}

// reaper freezes sandboxes idle longer than FreezeAfter and destroys those
// idle longer than IdleTimeout.
func (m *Manager) reaper() {
	defer close(m.reaperDone)
	every := m.cfg.IdleTimeout
	if m.cfg.FreezeAfter > 0 {
		every = min(every, m.cfg.FreezeAfter)
	}
	interval := min(max(every/4, 20*time.Millisecond), 30*time.Second)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			var idle, freeze []*entry
			m.mu.Lock()
			for name, e := range m.entries {
				if e.sb == nil || e.inFlight > 0 {
					continue
				}
				switch since := now.Sub(e.lastUsedAt); {
				case since >= m.cfg.IdleTimeout:
					delete(m.entries, name)
					m.dying[e.sb] = struct{}{}
					idle = append(idle, e)
				case m.cfg.FreezeAfter > 0 && since >= m.cfg.FreezeAfter && !e.sb.isPaused():
					freeze = append(freeze, e)
				}
			}
			m.mu.Unlock()
			for _, e := range idle {
				m.log.Info("destroying idle sandbox", "container", e.container, "sandbox", e.sb.ID())
				m.destroy(e.sb)
			}
			for _, e := range freeze {
				m.freeze(e)
			}
		}
	}
}

// freeze pauses e's sandbox unless a call arrived meanwhile. A call counts
// itself in flight (under mu) before it thaws (under fmu); freeze checks
// inFlight while holding fmu, so either it sees the call and skips, or
// the call's thaw waits for the freeze and undoes it.
func (m *Manager) freeze(e *entry) {
	e.fmu.Lock()
	defer e.fmu.Unlock()
	m.mu.Lock()
	busy := e.inFlight > 0 || m.entries[e.container] != e
	m.mu.Unlock()
	if busy {
		return
	}
	if err := e.sb.Pause(); err != nil && !errors.Is(err, ErrDestroyed) {
		m.log.Warn("freezing idle sandbox", "sandbox", e.sb.ID(), "err", err)
	}
}

// List reports every sandbox assigned to a container, ordered by
// container (pooled sandboxes are in Status and PoolList). A reaped or
// evicted sandbox is listed (as destroyed) until it is gone.
func (m *Manager) List() []types.SandboxInfo {
	m.mu.Lock()
	var sbs []*container
	for _, e := range m.entries {
		if e.sb != nil {
			sbs = append(sbs, e.sb)
		}
	}
	for sb := range m.dying {
		sbs = append(sbs, sb)
	}
	m.mu.Unlock()
	out := make([]types.SandboxInfo, 0, len(sbs))
	for _, sb := range sbs {
		out = append(out, sb.Info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Container < out[j].Container })
	return out
}

// PoolList reports the pooled sandboxes, oldest first.
func (m *Manager) PoolList() []types.SandboxInfo {
	m.mu.Lock()
	sbs := append([]*container(nil), m.pool...)
	m.mu.Unlock()
	out := make([]types.SandboxInfo, 0, len(sbs))
	for _, sb := range sbs {
		out = append(out, sb.Info())
	}
	return out
}

// find returns the live sandbox with id, assigned or pooled.
func (m *Manager) find(id string) *container {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.entries {
		if e.sb != nil && e.sb.id == id {
			return e.sb
		}
	}
	for _, sb := range m.pool {
		if sb.id == id {
			return sb
		}
	}
	return nil
}

// Inspect reports one sandbox (assigned or pooled) with its cgroup
// figures: memory and CPU usage, pids, OOM kills.
func (m *Manager) Inspect(id string) (types.SandboxInfo, error) {
	sb := m.find(id)
	if sb == nil {
		return types.SandboxInfo{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	info := sb.Info()
	st, err := sb.cgroupStats()
	if err != nil {
		return info, fmt.Errorf("sandbox %s: cgroup stats: %w", id, err)
	}
	info.Cgroup = st
	return info, nil
}

// FleetStatus reports pool and sandbox counts and the parent cgroup's figures.
func (m *Manager) Status() types.FleetStatus {
	st := types.FleetStatus{
		PoolTarget:   m.cfg.PoolSize,
		MaxSandboxes: m.cfg.MaxSandboxes,
		Sandboxes:    map[types.SandboxState]int{types.SandboxPooled: 0, types.SandboxRunning: 0, types.SandboxPaused: 0},
	}
	m.mu.Lock()
	st.PoolReady = len(m.pool)
	st.Sandboxes[types.SandboxPooled] = len(m.pool)
	for _, e := range m.entries {
		if e.sb == nil {
			continue
		}
		if e.sb.isPaused() {
			st.Sandboxes[types.SandboxPaused]++
		} else {
			st.Sandboxes[types.SandboxRunning]++
		}
	}
	m.mu.Unlock()
	if fs, err := m.fleet.stats(); err == nil {
		st.Fleet = &fs
	}
	return st
}

// Kill destroys the sandbox with the given id (assigned or pooled; not the
// container name). Calls in flight fail with ErrDestroyed.
func (m *Manager) Kill(id string) error {
	m.mu.Lock()
	var found *container
	for name, e := range m.entries {
		if e.sb != nil && e.sb.id == id {
			found = e.sb
			delete(m.entries, name)
			break
		}
	}
	if found == nil {
		for i, sb := range m.pool {
			if sb.id == id {
				found = sb
				m.pool = append(m.pool[:i:i], m.pool[i+1:]...)
				select {
				case m.refill <- struct{}{}:
				default:
				}
				break
			}
		}
	}
	m.mu.Unlock()
	if found == nil {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return found.Destroy()
}

// Close stops the reaper and the pool filler, destroys every sandbox
// (bounded by ctx) and removes CgroupParent. Invoke fails with ErrClosed
// afterwards.
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
	pool := m.pool
	m.pool = nil
	m.mu.Unlock()
	close(m.stop)
	<-m.reaperDone
	<-m.poolDone // bounded by StartTimeout

	errs := make(chan error, len(all)+len(pool))
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
	for _, sb := range pool {
		go func() { errs <- sb.Destroy() }()
	}
	var errList []error
	for range len(all) + len(pool) {
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
	if err := m.fleet.delete(); err != nil {
		m.log.Warn("removing parent cgroup through containerd/cgroups", "err", err)
	}
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
