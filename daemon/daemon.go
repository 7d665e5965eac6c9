// Package daemon wires webtaskd together: configuration, key material, the
// store, the sandbox manager and the HTTP API, with one context-driven,
// time-bounded lifecycle.
package daemon

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/webtaskd/webtaskd/api"
	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/httplimit"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/daemon/cluster"
	"github.com/webtaskd/webtaskd/daemon/cron"
	"github.com/webtaskd/webtaskd/sandbox"
	"github.com/webtaskd/webtaskd/sandbox/agent"
	"github.com/webtaskd/webtaskd/sandbox/logstream"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/keyring"
	"github.com/webtaskd/webtaskd/store/modules"
)

// MasterTokenFile is the name, inside the data directory, of the file that
// holds the master token (mode 0600).
const MasterTokenFile = "master.token"

// DatabaseFile and KeysDir are the database and the key sets directory
// inside the data directory.
const (
	DatabaseFile = "webtaskd.db"
	KeysDir      = "keys"
)

// dataDirMode is the mode of the data directory (it holds the key sets, the
// database and the master token) and of its keys directory.
const dataDirMode = 0o700

// Daemon is one running webtaskd. Open starts it; Close stops it. A Daemon
// is not reusable after Close.
type Daemon struct {
	cfg Config
	log *slog.Logger

	ring  *keyring.Ring
	store *store.Store
	mgr   *sandbox.Manager
	logs  *logstream.Hub   // real-time webtask output
	cron  *cron.Scheduler  // runs the cron jobs
	mods  *modules.Manager // provisions npm modules
	// Cluster mode (member.go): the membership, the change feed's stop.
	member   *cluster.Member
	feedStop context.CancelFunc
	feedDone chan struct{}
	api      atomic.Pointer[api.Server] // serves ctx.storage once built
	srv      *http.Server
	ln       net.Listener
	tls      *certReloader // nil: plain HTTP

	// The automatic code-blob collection (gc.go).
	gcStop     chan struct{}
	gcDone     chan struct{}
	gcStopOnce sync.Once
	gcStarted  bool

	masterMu    sync.Mutex // guards masterToken (re-minted after revocation or retirement)
	masterToken string
	serveErr    chan error
}

// New returns a daemon for a validated configuration.
func New(cfg Config, log *slog.Logger) *Daemon {
	return &Daemon{cfg: cfg, log: log, serveErr: make(chan error, 1), gcStop: make(chan struct{}), gcDone: make(chan struct{})}
}

// Open creates what is missing in the data directory (key sets, database,
// master token), removes sandboxes left by a previous crash, and starts
// serving HTTP. When it returns nil, /healthz answers 200. On error,
// everything opened so far is closed again.
func (d *Daemon) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			d.closeResources(context.Background())
		}
	}()
	if err := d.openStore(ctx); err != nil {
		return err
	}
	if err := d.ensureMasterToken(); err != nil {
		return fmt.Errorf("master token: %w", err)
	}
	d.logs = logstream.New(d.cfg.Logs)
	sb := d.cfg.Sandbox
	if sb.CgroupParent == "" {
		if sb.CgroupParent, err = resolveCgroupParent(d.log); err != nil {
			return fmt.Errorf("cgroup parent: %w", err)
		}
	}
	mc := d.cfg.Modules
	mc.Dir = d.cfg.moduleStoreDir()
	mc.CgroupParent = sb.CgroupParent + "-modules"
	mc.Logger = d.log.With("component", "modules")
	if d.mods, err = modules.Open(ctx, mc, d.store); err != nil {
		return fmt.Errorf("modules: %w", err)
	}
	d.gcStarted = true
	d.startGC()
	sb.Logger = d.log.With("component", "sandbox")
	sb.OnLog = d.onUserLog
	sb.OnStorage = d.onStorage
	sb.OnToken = d.onToken
	sb.LimitsFor = d.containerLimits
	sb.Rootfs.ModuleStoreDir = d.cfg.moduleStoreDir() // read-only at /modules
	if d.mgr, err = sandbox.NewManager(sb); err != nil {
		return fmt.Errorf("sandbox manager: %w", err)
	}
	metrics := prometheus.NewRegistry()
	if err := metrics.Register(d.mgr); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "webtaskd_log_records_dropped_total",
		Help: "Webtask log records dropped because a real-time log reader was too slow (counted per reader).",
	}, func() float64 { return float64(d.logs.DroppedTotal()) }))
	if d.member, err = d.newMember(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if d.cron, err = cron.New(cron.Config{
		Store:   d.store,
		Cluster: d.cronCluster(),
		// A run waits for a queue slot, maybe a sandbox boot, then the
		// webtask's own exec timeout answers.
		RunTimeout: d.cfg.Sandbox.QueueTimeout + d.cfg.Sandbox.ExecTimeout + 30*time.Second,
		Logger:     d.log.With("component", "cron"),
	}); err != nil {
		return fmt.Errorf("cron: %w", err)
	}
	guard := httplimit.New(d.cfg.HTTP, d.log.With("component", "http"))
	mgr := d.mgr
	apiCfg := d.cfg.API
	apiCfg.Guard = guard
	apiCfg.NodeID = d.cfg.Cluster.NodeID
	var member api.Cluster
	if d.member != nil {
		member = d.member
	}
	handler, err := api.New(apiCfg, api.Deps{
		Store:     d.store,
		Keys:      d.ring,
		Runner:    d.mgr,
		Sandboxes: d.mgr,
		Logger:    d.log.With("component", "api"),
		Now:       d.cfg.Clock,
		// Revocations are checked on every request against the store's
		// in-memory set; key retirement re-seals through the store.
		Security:      d.store,
		KeyAdmin:      d.ring,
		OnKeysChanged: d.ensureMasterToken,

		Fleet:           d.mgr,
		ContainerLimits: d.store,
		Metrics:         metrics,
		Data:            d.store,
		Logs:            d.logs,
		CronStore:       d.store,
		Cron:            d.cron,
		Codes:           d.store,
		Transpiled:      d.store,
		Modules:         d.mods,
		Backup:          d,
		Collector:       d.store,
		ModuleCollector: d.mods,
		Audit:           d.store,
		Cluster:         member,
		ReadyChecks: map[string]api.ReadyCheck{
			"store":     d.store.Ping,
			"sandboxes": func(context.Context) error { return mgr.Ready() },
		},
	})
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	d.api.Store(handler)
	if d.ln, err = net.Listen("tcp", d.cfg.ListenAddr); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	d.ln = guard.Listener(d.ln)
	if d.tls != nil {
		d.ln = tls.NewListener(d.ln, d.tls.tlsConfig())
	}
	d.srv = guard.Server(handler.Handler())
	// Cron runs go in-process through the API handler (see package cron);
	// their Host is the public URL's, else the listen address.
	cronHost := d.ln.Addr().String()
	if u, err := url.Parse(d.cfg.API.PublicURL); err == nil && u.Host != "" {
		cronHost = u.Host
	}
	if err := d.cron.Start(ctx, handler.Handler(), cronHost); err != nil {
		_ = d.ln.Close()
		return err
	}
	if err := d.startMember(ctx); err != nil {
		_ = d.ln.Close()
		return err
	}
	go func() {
		if err := d.srv.Serve(d.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.serveErr <- err
		}
		close(d.serveErr)
	}()
	d.log.Info("webtaskd ready", "listen", d.ln.Addr().String(), "data_dir", d.cfg.DataDir,
		"state_dir", d.cfg.Sandbox.StateDir, "master_token_file", filepath.Join(d.cfg.DataDir, MasterTokenFile))
	return nil
}

// openStore opens the data dir, the key sets and the store: the SQLite
// database and key set files in the data dir, or (cluster mode) the
// PostgreSQL store, whose key sets are in the database, wrapped under the
// key-encryption key. It also loads the TLS certificate and makes the
// state dir.
func (d *Daemon) openStore(ctx context.Context) (err error) {
	dbPath, keysDir := filepath.Join(d.cfg.DataDir, DatabaseFile), filepath.Join(d.cfg.DataDir, KeysDir)
	dirs := []string{d.cfg.DataDir}
	if !d.cfg.Cluster.Shared() {
		if err := checkKeySets(ctx, dbPath, keysDir); err != nil {
			return fmt.Errorf("key sets: %w", err)
		}
		dirs = append(dirs, keysDir)
	}
	for _, dir := range dirs {
		if err := d.ensureDir(dir, dataDirMode); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
	}
	if d.cfg.TLSCertFile != "" {
		if d.tls, err = newCertReloader(d.cfg.TLSCertFile, d.cfg.TLSKeyFile); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(d.cfg.Sandbox.StateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if d.cfg.Cluster.Shared() {
		if d.store, err = store.Open(ctx, store.Options{
			DSN:    d.cfg.Cluster.Store,
			KEK:    d.cfg.Cluster.KEK,
			NodeID: d.cfg.Cluster.NodeID,
			Now:    d.cfg.Clock,
			Quotas: d.cfg.Quotas,
		}); err != nil {
			return fmt.Errorf("database: %w", err)
		}
		d.ring = d.store.Ring()
		return nil
	}
	if d.ring, err = keyring.Open(keysDir); err != nil {
		return fmt.Errorf("key sets: %w", err)
	}
	if d.store, err = store.Open(ctx, store.Options{
		Path:   dbPath,
		Ring:   d.ring,
		Now:    d.cfg.Clock,
		Quotas: d.cfg.Quotas,
	}); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}

// ReloadTLS loads the TLS certificate and key files again (SIGHUP); on
// error the daemon keeps serving the previous ones. Without TLS it does
// nothing.
func (d *Daemon) ReloadTLS() error {
	if d.tls == nil {
		return nil
	}
	if err := d.tls.Reload(); err != nil {
		return err
	}
	d.log.Info("TLS certificate reloaded", "cert_file", d.cfg.TLSCertFile)
	return nil
}

// Addr is the address the API listens on (useful with port 0).
func (d *Daemon) Addr() string { return d.ln.Addr().String() }

// MasterToken returns the master token (it changes when the old one is
// revoked or its key set retired).
func (d *Daemon) MasterToken() string {
	d.masterMu.Lock()
	defer d.masterMu.Unlock()
	return d.masterToken
}

// RunCronNow runs the cron job container/name once, as a tick would, and
// returns when its result is recorded (tests and manual triggers).
func (d *Daemon) RunCronNow(container, name string) error { return d.cron.RunNow(container, name) }

// Err delivers a fatal serving error; it is closed when serving stops.
func (d *Daemon) Err() <-chan error { return d.serveErr }

// Close shuts down in bounded steps: stop accepting and let in-flight calls
// finish for ShutdownGrace, then destroy every sandbox and close the
// database. ctx bounds the whole (the hard timeout).
func (d *Daemon) Close(ctx context.Context) error {
	var errs []error
	if d.cron != nil {
		// No new cron runs; runs in flight are canceled and recorded.
		grace, cancel := context.WithTimeout(ctx, d.cfg.ShutdownGrace)
		if err := d.cron.Stop(grace); err != nil {
			d.log.Warn("cron runs did not finish within the grace period", "err", err)
		}
		cancel()
	}
	if d.logs != nil {
		// Log streams never finish on their own: end them first so that
		// the graceful shutdown below does not wait for them.
		d.logs.Close()
	}
	if d.srv != nil {
		grace, cancel := context.WithTimeout(ctx, d.cfg.ShutdownGrace)
		if err := d.srv.Shutdown(grace); err != nil {
			d.log.Warn("in-flight calls did not finish within the grace period; closing connections", "err", err)
			_ = d.srv.Close()
		}
		cancel()
	}
	errs = append(errs, d.closeResources(ctx))
	return errors.Join(errs...)
}

func (d *Daemon) closeResources(ctx context.Context) error {
	var errs []error
	d.stopMember() // before the store closes
	d.stopGC()     // before the modules and the store close
	if d.cron != nil {
		if err := d.cron.Stop(ctx); err != nil { // idempotent
			errs = append(errs, err)
		}
	}
	if d.mgr != nil {
		if err := d.mgr.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("sandboxes: %w", err))
		}
		d.mgr = nil
	}
	if d.mods != nil {
		// Installs in flight stop and stay queued for the next start.
		_ = d.mods.Close()
		d.mods = nil
	}
	if d.store != nil {
		if err := d.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("database: %w", err))
		}
		d.store = nil
	}
	if d.ln != nil && d.srv == nil {
		_ = d.ln.Close()
	}
	return errors.Join(errs...)
}

// containerLimits reads a container's limit overrides for the sandbox
// manager (on first use of a container, never on warm calls).
func (d *Daemon) containerLimits(container string) (types.Limits, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := d.store.GetLimits(ctx, container)
	if errors.Is(err, store.ErrNotFound) {
		return types.Limits{}, nil
	}
	if err != nil {
		return types.Limits{}, err
	}
	return l.Limits, nil
}

// Answers of webtask callbacks that arrive before the API is up.
var (
	errStorageNotReady = errdefs.New(errdefs.ErrUnavailable, "storage is not ready")
	errTokensNotReady  = errdefs.New(errdefs.ErrUnavailable, "token creation is not ready")
)

// onStorage serves the webtasks' ctx.storage calls through the API (same
// documents and error codes as /api/webtask/{c}/{n}/data).
func (d *Daemon) onStorage(ctx context.Context, op agent.StorageOp) agent.StorageResult {
	if a := d.api.Load(); a != nil {
		return a.Storage(ctx, op)
	}
	return api.StorageError(d.log, op, cmp.Or[error](op.Refused, errStorageNotReady))
}

// onToken serves the webtasks' ctx.create_token calls through the API
// (the narrowing and answers of POST /api/tokens/issue).
func (d *Daemon) onToken(ctx context.Context, op agent.TokenOp) agent.TokenResult {
	if a := d.api.Load(); a != nil {
		return a.CreateToken(ctx, op)
	}
	return api.TokenError(d.log, op, cmp.Or[error](op.Refused, errTokensNotReady))
}

// onUserLog receives webtask output. It is data, not daemon log: it is never
// written to the daemon's log stream.
// It goes to the container's real-time log readers (never blocking).
func (d *Daemon) onUserLog(container string, line agent.LogLine) {
	d.logs.Publish(container, logstream.Record{
		Msg: line.Msg, ReqID: line.ReqID, Webtask: line.Name, Stream: line.Stream, Sandbox: true,
	})
}

// ensureDir creates dir with mode, or tightens an existing dir to mode.
func (d *Daemon) ensureDir(dir string, mode os.FileMode) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	return d.tighten(dir, mode)
}

// tighten sets path's mode to mode when it allows more than mode.
func (d *Daemon) tighten(path string, mode os.FileMode) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&^mode != 0 {
		if err := os.Chmod(path, mode); err != nil {
			return err
		}
		d.log.Info("tightened file mode", "path", path, "was", fmt.Sprintf("%#o", perm), "now", fmt.Sprintf("%#o", mode))
	}
	return nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
