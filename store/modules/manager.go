// Package modules provisions npm modules for webtasks: each exact
// name@version is installed once, by the host's real npm client run
// confined (an unprivileged uid, its own HOME, a cgroup, a time and a disk
// bound, lifecycle scripts off unless allow-listed), into a
// content-addressed, read-only store under the data directory:
//
//	<Dir>/<sha256("name@version")>/node_modules/<name>/…
//
// with its own dependency tree beside it. Install state (queued, available,
// failed with npm's message) is kept in the store's node_modules table and
// is per host. Concurrent requests for one module coalesce on one install.
package modules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
)

// Defaults of Config.
const (
	DefaultInstallTimeout   = 5 * time.Minute
	DefaultInstallMemory    = 1 << 30 // bytes
	DefaultInstallPids      = 512
	DefaultInstallUID       = 64911
	DefaultMaxInstallBytes  = 512 << 20
	DefaultConcurrentInstal = 2
)

// Records persists module records (*store.Store).
type Records interface {
	PutModule(ctx context.Context, m types.Module) (*types.Module, error)
	// GetModule wraps errdefs.ErrNotFound when name@version has no record.
	GetModule(ctx context.Context, name, version string) (*types.Module, error)
	ModuleVersions(ctx context.Context, name string) ([]types.Module, error)
	ListModules(ctx context.Context) ([]types.Module, error)
	DeleteModule(ctx context.Context, name, version string) error
}

// Config configures a Manager.
type Config struct {
	// Dir is the module store (created 0755 if missing).
	Dir string
	// NPM is the npm binary; "" resolves npm on PATH.
	NPM string
	// WorkDir holds each install's private work directory while npm runs
	// (npm's HOME, cache, temp files and the tree it writes, owned by UID);
	// "" is os.TempDir(). It must be traversable by UID.
	WorkDir string
	// MaxStoreBytes bounds the sum of the installed modules' sizes; an
	// install that would pass it fails. 0: no bound.
	MaxStoreBytes int64
	// MaxInstallBytes bounds one install's tree on disk while npm runs
	// (checked periodically; npm is killed past it).
	MaxInstallBytes int64
	// InstallTimeout bounds one npm run.
	InstallTimeout time.Duration
	// InstallMemoryBytes is the memory limit of one npm run's cgroup.
	InstallMemoryBytes int64
	// InstallPids is the task limit of one npm run's cgroup.
	InstallPids int64
	// CgroupParent is the cgroup under which each npm run gets its own;
	// "" runs npm without a cgroup (no memory bound: tests as non-root).
	CgroupParent string
	// UID and GID run npm when the daemon is root (never root itself).
	UID, GID int
	// AllowScripts names the packages whose lifecycle scripts run at
	// install (npm --ignore-scripts for every other one).
	AllowScripts []string
	// TarballDir, when set, is a directory of `npm pack` tarballs
	// (<name>-<version>.tgz, scoped: <scope>-<name>-<version>.tgz): a
	// requested module found there is installed from its tarball
	// (air-gapped hosts); its dependencies still come from npm's registry
	// or cache as configured.
	TarballDir string
	// UserConfig is the npmrc copied into npm's private HOME ("" uses the
	// daemon user's ~/.npmrc when it exists). The global npmrc and
	// npm_config_* / proxy variables of the daemon apply as well.
	UserConfig string
	// Env is added to npm's environment last (tests, NPM_CONFIG_*).
	Env []string
	// Concurrent bounds simultaneous installs.
	Concurrent int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.InstallTimeout <= 0 {
		c.InstallTimeout = DefaultInstallTimeout
	}
	if c.InstallMemoryBytes <= 0 {
		c.InstallMemoryBytes = DefaultInstallMemory
	}
	if c.InstallPids <= 0 {
		c.InstallPids = DefaultInstallPids
	}
	if c.MaxInstallBytes <= 0 {
		c.MaxInstallBytes = DefaultMaxInstallBytes
	}
	if c.Concurrent <= 0 {
		c.Concurrent = DefaultConcurrentInstal
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Manager provisions modules. Its methods are safe for concurrent use.
type Manager struct {
	cfg Config
	rec Records
	log *slog.Logger
	npm string // "" when npm is missing: requests are ErrUnavailable

	ctx    context.Context // canceled by Close: stops installs
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}

	mu       sync.Mutex
	inflight map[string]chan struct{} // Key -> closed when its install ends
	closed   bool

	// states mirrors the records' states for the run path (State), under
	// stateMu; gen counts its changes.
	stateMu sync.RWMutex
	states  map[types.ModuleSpec]string
	gen     atomic.Uint64
}

// Open makes the store directory, removes crashed installs' staging
// directories, re-queues installs a previous run left queued, marks
// available modules whose files are gone as failed, and returns the
// Manager. npm is looked up now: without it the Manager still lists and
// removes modules, and requests are ErrUnavailable.
func Open(ctx context.Context, cfg Config, rec Records) (*Manager, error) {
	cfg.setDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("modules: Dir is required")
	}
	npm, err := lookNPM(cfg.NPM)
	if err != nil {
		cfg.Logger.Warn("npm is not installed: module requests will be refused (make deps installs it)", "err", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	if err := removeStaging(cfg.Dir); err != nil {
		return nil, err
	}
	mctx, cancel := context.WithCancel(context.Background())
	m := &Manager{cfg: cfg, rec: rec, log: cfg.Logger, npm: npm, ctx: mctx, cancel: cancel,
		sem: make(chan struct{}, cfg.Concurrent), inflight: map[string]chan struct{}{},
		states: map[types.ModuleSpec]string{}}
	all, err := rec.ListModules(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	for _, r := range all {
		spec := types.ModuleSpec{Name: r.Name, Version: r.Version}
		switch r.State {
		case types.ModuleQueued:
			if npm != "" {
				m.start(spec)
			}
		case types.ModuleAvailable:
			if _, err := os.Stat(m.Path(spec)); err != nil {
				r.State, r.Error, r.SizeBytes = types.ModuleFailed, "the installed files are missing; request the module again", 0
				if _, err := rec.PutModule(ctx, r); err != nil {
					cancel()
					return nil, err
				}
			}
		}
		m.setState(spec, r.State)
	}
	return m, nil
}

// State is name@version's install state on this host ("" when it has no
// record), from memory: cheap enough for every run.
func (m *Manager) State(spec types.ModuleSpec) string {
	m.stateMu.RLock()
	defer m.stateMu.RUnlock()
	return m.states[spec]
}

// Generation changes whenever a module's state does: a caller that cached
// answers of State may keep them while it stays the same.
func (m *Manager) Generation() uint64 { return m.gen.Load() }

func (m *Manager) setState(spec types.ModuleSpec, state string) {
	m.stateMu.Lock()
	if state == "" {
		delete(m.states, spec)
	} else {
		m.states[spec] = state
	}
	m.stateMu.Unlock()
	m.gen.Add(1)
}

// put records r and mirrors its state.
func (m *Manager) put(ctx context.Context, r types.Module) (*types.Module, error) {
	out, err := m.rec.PutModule(ctx, r)
	if err != nil {
		return nil, err
	}
	m.setState(types.ModuleSpec{Name: r.Name, Version: r.Version}, r.State)
	return out, nil
}

// Dir is the module store directory.
func (m *Manager) Dir() string { return m.cfg.Dir }

// Path is the node_modules directory of name@version's tree (its package
// at Path/<name>); it exists once the module is available.
func (m *Manager) Path(spec types.ModuleSpec) string {
	return filepath.Join(m.cfg.Dir, Key(spec), "node_modules")
}

// Request records and starts the installs of specs (validated: ErrInvalid)
// and returns their states: available ones stay, queued ones keep their
// install, failed and unknown ones are queued (a failed install is
// retried). With reset every named module is removed and installed again.
func (m *Manager) Request(ctx context.Context, specs []types.ModuleSpec, reset bool) ([]types.Module, error) {
	if err := ValidateAll(specs); err != nil {
		return nil, err
	}
	out := make([]types.Module, 0, len(specs))
	for _, spec := range specs {
		r, err := m.request(ctx, spec, reset)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, nil
}

func (m *Manager) request(ctx context.Context, spec types.ModuleSpec, reset bool) (*types.Module, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errdefs.Errorf(errdefs.ErrUnavailable, "the daemon is shutting down")
	}
	if m.npm == "" {
		return nil, errdefs.Errorf(errdefs.ErrUnavailable, "npm is not installed on this host")
	}
	cur, err := m.rec.GetModule(ctx, spec.Name, spec.Version)
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	_, busy := m.inflight[Key(spec)]
	if cur != nil && !reset {
		switch {
		case cur.State == types.ModuleAvailable:
			return cur, nil
		case cur.State == types.ModuleQueued && busy:
			return cur, nil
		}
	}
	if busy {
		// A reset of a module being installed: the install in flight
		// is the rebuild.
		return cur, nil
	}
	if reset {
		if err := removeTree(filepath.Join(m.cfg.Dir, Key(spec))); err != nil {
			return nil, err
		}
	}
	r, err := m.put(ctx, types.Module{Name: spec.Name, Version: spec.Version, State: types.ModuleQueued})
	if err != nil {
		return nil, err
	}
	m.startLocked(spec)
	return r, nil
}

// Versions lists the known versions of name (validated: ErrInvalid).
func (m *Manager) Versions(ctx context.Context, name string) ([]types.Module, error) {
	if !ValidName(name) {
		return nil, errdefs.Errorf(errdefs.ErrInvalid, "invalid npm module name")
	}
	return m.rec.ModuleVersions(ctx, name)
}

// List lists every module record.
func (m *Manager) List(ctx context.Context) ([]types.Module, error) { return m.rec.ListModules(ctx) }

// Remove deletes name@version's files and record: ErrNotFound when it has
// none, ErrConflict while it installs.
func (m *Manager) Remove(ctx context.Context, spec types.ModuleSpec) error {
	if err := Validate(spec); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, busy := m.inflight[Key(spec)]; busy {
		return errdefs.Errorf(errdefs.ErrConflict, "module %s is being installed; remove it when it is done", spec)
	}
	if _, err := m.rec.GetModule(ctx, spec.Name, spec.Version); err != nil {
		return err
	}
	if err := removeTree(filepath.Join(m.cfg.Dir, Key(spec))); err != nil {
		return err
	}
	if err := m.rec.DeleteModule(ctx, spec.Name, spec.Version); err != nil {
		return err
	}
	m.setState(spec, "")
	return nil
}

// Wait blocks until no install of spec is in flight (or ctx ends) and
// returns its record.
func (m *Manager) Wait(ctx context.Context, spec types.ModuleSpec) (*types.Module, error) {
	m.mu.Lock()
	done := m.inflight[Key(spec)]
	m.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return m.rec.GetModule(ctx, spec.Name, spec.Version)
}

// Close stops the installs in flight (their records stay queued: the next
// Open starts them again), waits for them and removes the install cgroups'
// parent. It may be called more than once.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	removeCgroupParent(m.cfg.CgroupParent)
	return nil
}

func (m *Manager) start(spec types.ModuleSpec) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.startLocked(spec)
}

// startLocked starts spec's install unless one is in flight: concurrent
// requests of one module coalesce on it.
func (m *Manager) startLocked(spec types.ModuleSpec) {
	key := Key(spec)
	if _, busy := m.inflight[key]; busy || m.closed {
		return
	}
	done := make(chan struct{})
	m.inflight[key] = done
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.runInstall(spec)
		m.mu.Lock()
		delete(m.inflight, key)
		m.mu.Unlock()
		close(done)
	}()
}

// runInstall installs spec and records the outcome.
func (m *Manager) runInstall(spec types.ModuleSpec) {
	select {
	case m.sem <- struct{}{}:
		defer func() { <-m.sem }()
	case <-m.ctx.Done():
		return
	}
	begin := time.Now()
	size, err := m.install(m.ctx, spec)
	if m.ctx.Err() != nil {
		return // shutting down: stays queued, resumed by the next Open
	}
	r := types.Module{Name: spec.Name, Version: spec.Version, State: types.ModuleAvailable, SizeBytes: size}
	if err != nil {
		r.State, r.Error, r.SizeBytes = types.ModuleFailed, err.Error(), 0
		m.log.Warn("module install failed", "module", spec.String(), "err", err, "duration", time.Since(begin))
	} else {
		m.log.Info("module installed", "module", spec.String(), "bytes", size, "duration", time.Since(begin))
	}
	if _, err := m.put(context.Background(), r); err != nil {
		m.log.Error("recording module install", "module", spec.String(), "err", err)
	}
}

// storeBytes is the size of the available modules.
func (m *Manager) storeBytes(ctx context.Context) (int64, error) {
	all, err := m.rec.ListModules(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range all {
		if r.State == types.ModuleAvailable {
			n += r.SizeBytes
		}
	}
	return n, nil
}

// scriptsAllowed reports whether name's lifecycle scripts may run.
func (m *Manager) scriptsAllowed(name string) bool { return slices.Contains(m.cfg.AllowScripts, name) }
