package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// entry is the manager's record of one webtask container's sandbox. ready
// is closed once sb or err (and limits, execTimeout, sem, served) are set:
// a singleflight start.
type entry struct {
	container   string
	ready       chan struct{}
	sb          Sandbox
	err         error
	served      types.Served // how sb came to the container: pooled or cold
	limits      types.Limits
	execTimeout time.Duration
	sem         chan struct{} // one token per running call

	// inFlight (calls between acquire and release, queued ones included),
	// busySince (when inFlight last left 0), lastUsedAt and retired are
	// guarded by Manager.mu.
	inFlight   int
	busySince  time.Time
	lastUsedAt time.Time
	// retired: the entry left the map; the last call out destroys sb.
	retired bool

	// fmu orders freezing (reaper) against thawing (calls): see freeze.
	fmu sync.Mutex
}

// Manager owns every sandbox of the daemon: a pool of generic pre-booted
// sandboxes (pool.go), and one sandbox per webtask container taken from
// the pool (or booted) on first use, frozen when idle, reaped after
// IdleTimeout, evicted (LRU) past MaxSandboxes (reaper.go), recycled on
// timeout or crash. A sandbox that ran code for one container never
// serves another. It works only through the Sandbox interface, whose
// instances Config.NewSandbox makes.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	host   *lcHost // nil when Config.NewSandbox is injected
	met    *metrics
	served [3]servedMetrics // warm, pooled, cold

	mu      sync.Mutex
	entries map[string]*entry // by webtask container
	pool    []Sandbox         // ready pooled sandboxes, oldest first
	ps      poolState         // the pool's boots, waiters and demand
	// dying are sandboxes reaped or evicted but not yet destroyed: List
	// shows them until they are gone.
	dying  map[Sandbox]struct{}
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

// NewManager validates cfg and starts the idle reaper and the pool
// filler. Without an injected Config.NewSandbox it first prepares the
// host for libcontainer sandboxes (openHost): it sweeps sandboxes left by
// a previous daemon, creates the parent cgroup with its memory budget and
// builds the rootfs skeleton.
func NewManager(cfg Config) (*Manager, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:        cfg,
		log:        cfg.Logger,
		met:        newMetrics(),
		entries:    map[string]*entry{},
		dying:      map[Sandbox]struct{}{},
		refill:     make(chan struct{}, 1),
		stop:       make(chan struct{}),
		reaperDone: make(chan struct{}),
		poolDone:   make(chan struct{}),
	}
	if m.cfg.NewSandbox == nil {
		h, err := openHost(&m.cfg)
		if err != nil {
			return nil, err
		}
		m.host = h
		m.cfg.NewSandbox = h.newSandbox
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
// it fail with ErrDestroyed) and the next call gets a fresh one.
//
// The returned Call is never nil: on error it still tells how far the
// call got (Served, SandboxID, Queued, Duration); without error it holds
// the response, whose Body the caller must close.
func (m *Manager) Invoke(ctx context.Context, container string, req *agent.Request) (*Call, error) {
	began := time.Now()
	call := &Call{}
	err := m.invoke(ctx, container, req, call)
	call.Duration = time.Since(began)
	if call.Served != "" {
		sm := m.servedMetrics(call.Served)
		sm.calls.Inc()
		sm.duration.Observe(call.Duration.Seconds())
	}
	return call, err
}

func (m *Manager) invoke(ctx context.Context, container string, req *agent.Request, call *Call) error {
	if req.Container == "" {
		req.Container = container
	} else if req.Container != container {
		return fmt.Errorf("%w: request for container %q sent to container %q", ErrConfig, req.Container, container)
	}
	err := m.invokeOnce(ctx, container, req, call)
	if errors.Is(err, ErrNotReached) && ctx.Err() == nil {
		// The sandbox was found dead before the request was sent (for
		// example its runtime was killed while frozen): no user code ran,
		// so the call is retried, once, on a fresh sandbox.
		m.log.Warn("webtask runtime was dead before the call reached it; retrying on a fresh sandbox",
			"container", container, "sandbox", call.SandboxID, "req_id", req.ReqID, "err", err)
		m.met.retries.Inc()
		*call = Call{}
		err = m.invokeOnce(ctx, container, req, call)
	}
	return err
}

// invokeOnce is one attempt of invoke.
func (m *Manager) invokeOnce(ctx context.Context, container string, req *agent.Request, call *Call) error {
	e, served, err := m.acquire(ctx, container)
	if err != nil {
		switch {
		case errors.Is(err, ErrCapacity):
			m.met.failures.WithLabelValues(failCapacity).Inc()
		case errors.Is(err, ErrStart):
			m.met.failures.WithLabelValues(failStart).Inc()
		}
		return err
	}
	// A streamed response keeps its concurrency slot and its entry until
	// its body is closed.
	streaming := false
	defer func() {
		if !streaming {
			m.release(e)
		}
	}()
	call.Served, call.SandboxID = served, e.sb.ID()

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
			return fmt.Errorf("%w (%d running, waited %s)", ErrBusy, cap(e.sem), m.cfg.QueueTimeout)
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-e.sb.Done():
			t.Stop()
			return fmt.Errorf("%w (%w)", e.sb.Err(), ErrNotReached)
		}
		call.Queued = time.Since(q)
	}
	defer func() {
		if !streaming {
			<-e.sem
		}
	}()

	if m.cfg.FreezeAfter > 0 {
		e.fmu.Lock()
		err := e.sb.Resume()
		e.fmu.Unlock()
		if err != nil {
			if errors.Is(err, ErrDestroyed) && !errors.Is(err, ErrNotReached) {
				// Destroyed before this call could thaw it (another
				// call found it dead): the call never reached it.
				err = fmt.Errorf("%w (%w)", err, ErrNotReached)
			}
			m.failed(e, err)
			return err
		}
	}
	req.LogLimitBytes = m.cfg.LogLimitBytes

	// The exec timeout is a timer of the agent client (a derived context
	// per call cost more than the rest of the manager's warm path).
	resp, err := e.sb.Invoke(ctx, req, e.execTimeout)
	if err == nil && resp.Stream != nil {
		if max := e.limits.MaxResponseBytes; max > 0 && announcedLength(resp.Headers) > max {
			resp.Stream.Close() // refused before anything was answered
			return fmt.Errorf("%w (%d bytes)", ErrResponseTooLarge, max)
		}
		streaming = true
		call.setStream(resp.Status, resp.Headers, newStreamBody(ctx, resp.Stream, streamLimits{
			maxBytes: e.limits.MaxResponseBytes,
			idle:     m.cfg.StreamIdleTimeout,
			total:    m.cfg.StreamTimeout,
		}, func() {
			<-e.sem
			m.release(e)
		}))
		return nil
	}
	if err == nil {
		if max := e.limits.MaxResponseBytes; max > 0 && int64(len(resp.Body)) > max {
			return fmt.Errorf("%w (%d bytes)", ErrResponseTooLarge, max)
		}
		call.setResponse(resp.Status, resp.Headers, resp.Body)
		return nil
	}
	if errors.Is(err, ErrTimeout) && ctx.Err() == nil {
		m.met.timeouts.Inc()
		m.met.failures.WithLabelValues(failTimeout).Inc()
		m.log.Warn("invocation timed out; recycling sandbox", "container", container, "sandbox", e.sb.ID(), "req_id", req.ReqID)
		m.retire(e)
		return fmt.Errorf("%w (%s)", ErrTimeout, e.execTimeout)
	}
	m.failed(e, err)
	return err
}

// failed counts a call's failure by its reason and retires e when its
// sandbox died (OOM, crash) or was found dead before the call reached it.
func (m *Manager) failed(e *entry, err error) {
	switch {
	case errors.Is(err, ErrOOM):
		m.met.ooms.Inc()
		m.met.failures.WithLabelValues(failOOM).Inc()
		m.retire(e)
	case errors.Is(err, ErrCrashed):
		m.met.failures.WithLabelValues(failCrashed).Inc()
		m.retire(e)
	case errors.Is(err, ErrNotReached):
		m.retire(e)
	}
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
		if e.inFlight == 0 {
			e.busySince = time.Now()
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
		case <-e.sb.Done():
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
	l.MaxResponseBytes = m.cfg.MaxResponseBytes
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

	var sb Sandbox
	var served types.Served
	if m.poolServes(limits) {
		sb, served, err = m.fromPool(e.container, limits)
		if err != nil {
			m.log.Error("sandbox start failed", "container", e.container, "err", err)
			fail(err)
			return
		}
	} else {
		served = types.ServedCold
		began := time.Now()
		sb, err = m.newSandbox(e.container, limits)
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
	m.log.Info("sandbox assigned", "container", e.container, "sandbox", sb.ID(), "served", served)
	go m.watch(e)
}

// newSandbox starts a sandbox for container ("" for the pool) through
// Config.NewSandbox, bounded by StartTimeout.
func (m *Manager) newSandbox(container string, l types.Limits) (Sandbox, error) {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.StartTimeout)
	defer cancel()
	return m.cfg.NewSandbox(ctx, StartOptions{
		Container: container,
		Limits:    types.Limits{MemoryMB: l.MemoryMB, CPUs: l.CPUs, Pids: l.Pids, TmpMB: m.cfg.Limits.TmpMB},
		Logger:    m.log,
		OnLog:     m.cfg.OnLog,
		OnStorage: m.cfg.OnStorage,
		OnToken:   m.cfg.OnToken,
	})
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
	m.destroy(e.sb)
}

func (m *Manager) destroy(sb Sandbox) {
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
