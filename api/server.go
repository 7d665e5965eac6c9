// Package api serves the Auth0-Webtask-compatible HTTP API (reference §1):
// token issue and inspect, webtask management, webtask runs and the admin
// endpoints, on echo/v4. Errors are always JSON {"code","message","req_id"}
// and every response carries the x-wt-request-id header.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/webtaskd/webtaskd/api/editor"
	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox"
	"github.com/webtaskd/webtaskd/sandbox/agent"
	"github.com/webtaskd/webtaskd/sandbox/logstream"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/keyring"
	"github.com/webtaskd/webtaskd/store/token"
)

// HeaderRequestID carries the request id on every response.
const HeaderRequestID = "X-Wt-Request-Id"

// HeaderNode names, on every response, the daemon (--node-id) that served
// it.
const HeaderNode = "X-Wt-Node"

// Store is the webtask persistence the API needs (*store.Store).
type Store interface {
	PutWebtask(ctx context.Context, w *store.Webtask) (*store.Webtask, error)
	// GetWebtask returns a shared read-only copy (served from a cache).
	GetWebtask(ctx context.Context, container, name string) (*store.Webtask, error)
	DeleteWebtask(ctx context.Context, container, name string) error
	ListWebtasks(ctx context.Context, o store.ListOptions) ([]*store.Webtask, error)
}

// Keys signs tokens and seals secrets (*keyring.Ring).
type Keys interface {
	Current() *keyring.KeySet
	Get(kid string) (*keyring.KeySet, error)
	Seal(plain, ad []byte) (sealed, kid string, err error)
	Unseal(sealed, kid string, ad []byte) ([]byte, error)
}

// Runner invokes webtasks (*sandbox.Manager). The Call holds the
// response, whose Body the caller closes; on error it may still say how
// the call was served.
type Runner interface {
	Invoke(ctx context.Context, container string, req *agent.Request) (*sandbox.Call, error)
}

// Sandboxes is the admin view of the sandboxes (*sandbox.Manager).
type Sandboxes interface {
	List() []types.SandboxInfo
	Kill(id string) error
}

// Deps are the collaborators of the API server. Every interface field is
// required (New fails without it); Logger, Now, Revoked and OnKeysChanged
// have defaults.
type Deps struct {
	Store     Store
	Keys      Keys
	Runner    Runner
	Sandboxes Sandboxes
	// Security stores revocations and re-seals secrets on key retirement.
	Security SecurityStore
	// KeyAdmin rotates and retires key sets.
	KeyAdmin KeyAdmin
	// Fleet is the sandbox fleet's admin view (inspect, status, recycle).
	Fleet Fleet
	// ContainerLimits stores per-container limit overrides.
	ContainerLimits ContainerLimitsStore
	// Metrics is scraped by GET /metrics.
	Metrics prometheus.Gatherer
	// Data keeps per-webtask storage (the /data routes and Storage).
	Data DataStore
	// Logs is the real-time log hub behind GET /api/logs/tenant/{c}.
	Logs *logstream.Hub
	// CronStore and Cron back the /api/cron routes (jobs, state, history).
	CronStore CronStore
	Cron      CronScheduler
	// Codes keeps the inline code of unnamed code tokens (content-
	// addressed).
	Codes CodeStore
	// Transpiled keeps the CommonJS form of ES module and TypeScript code.
	Transpiled TranspiledStore
	// Modules provisions npm modules (the /api/env/node/modules routes).
	Modules Modules

	// Backup backs POST /api/admin/backup; nil answers 503.
	Backup Backuper
	// Collector backs POST /api/admin/gc; nil answers 503.
	Collector CodeCollector
	// ModuleCollector, with Collector, collects unused module versions on
	// POST /api/admin/gc; nil collects none.
	ModuleCollector ModuleCollector
	// Audit records management actions and backs GET /api/admin/audit;
	// nil records nothing.
	Audit AuditStore
	// Cluster is this daemon's view of the other cluster members (peer
	// log streams, the member list); nil in single-host mode.
	Cluster Cluster
	// ReadyChecks are the parts GET /readyz checks, by name ("store",
	// "sandboxes"); none means ready whenever the API answers.
	ReadyChecks map[string]ReadyCheck

	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// Revoked is the token revocation check (ca plus jti); nil uses
	// Security.AnyRevoked.
	Revoked token.RevokedFunc
	// OnKeysChanged is called after a revocation or a key retirement (the
	// daemon re-checks its master token then); nil does nothing.
	OnKeysChanged func() error
}

// missing names the required dependencies d lacks.
func (d *Deps) missing() []string {
	var out []string
	for _, r := range []struct {
		name   string
		absent bool
	}{
		{"Store", d.Store == nil}, {"Keys", d.Keys == nil}, {"Runner", d.Runner == nil},
		{"Sandboxes", d.Sandboxes == nil}, {"Security", d.Security == nil}, {"KeyAdmin", d.KeyAdmin == nil},
		{"Fleet", d.Fleet == nil}, {"ContainerLimits", d.ContainerLimits == nil}, {"Metrics", d.Metrics == nil},
		{"Data", d.Data == nil}, {"Logs", d.Logs == nil}, {"CronStore", d.CronStore == nil},
		{"Cron", d.Cron == nil}, {"Codes", d.Codes == nil}, {"Transpiled", d.Transpiled == nil},
		{"Modules", d.Modules == nil},
	} {
		if r.absent {
			out = append(out, r.name)
		}
	}
	return out
}

// CodeStore keeps code blobs by content (*store.Store). GetCode is on the
// run path of unnamed code tokens and must answer warm reads from memory.
type CodeStore interface {
	PutCode(ctx context.Context, code string) (hash string, err error)
	GetCode(ctx context.Context, hash string) (string, error)
}

// Server is the HTTP API.
type Server struct {
	cfg       Config
	store     Store
	keys      Keys
	runner    Runner
	sandboxes Sandboxes
	log       *slog.Logger
	now       func() time.Time
	verifier  token.Verifier
	remote    *remoteCache
	e         *echo.Echo

	security        SecurityStore
	keyAdmin        KeyAdmin
	onKeysChanged   func() error
	keyMu           sync.Mutex // serialises key rotation and retirement
	limits          *limiters
	stored          claimsCache
	fixed           fixedCache
	fleet           Fleet
	limitStore      ContainerLimitsStore
	metrics         http.Handler
	data            DataStore
	logs            *logstream.Hub
	cronStore       CronStore
	cron            CronScheduler
	codes           CodeStore
	transpiled      TranspiledStore
	decisions       transpileDecisions
	modules         Modules
	resolved        resolutions
	readyChecks     map[string]ReadyCheck
	backuper        Backuper
	collector       CodeCollector
	moduleCollector ModuleCollector
	audit           AuditStore
	cluster         Cluster

	idPrefix string
	node     []string // the X-Wt-Node header value (shared, capacity 1)
	idSeq    atomic.Uint64
}

// New builds the API server.
func New(cfg Config, d Deps) (*Server, error) {
	if m := d.missing(); len(m) > 0 {
		return nil, fmt.Errorf("api: missing dependencies: %s", strings.Join(m, ", "))
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	ed, err := editor.New(editor.Config{FrameAncestors: cfg.EditorFrameAncestors})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("api: request id prefix: %w", err)
	}
	if d.Revoked == nil {
		d.Revoked = d.Security.AnyRevoked
	}
	s := &Server{
		cfg: cfg, store: d.Store, keys: d.Keys, runner: d.Runner, sandboxes: d.Sandboxes,
		log: d.Logger, now: d.Now,
		security: d.Security, keyAdmin: d.KeyAdmin, onKeysChanged: d.OnKeysChanged,
		limits: newLimiters(),
		fleet:  d.Fleet, limitStore: d.ContainerLimits,
		data:      d.Data,
		logs:      d.Logs,
		cronStore: d.CronStore, cron: d.Cron,
		codes:           d.Codes,
		transpiled:      d.Transpiled,
		modules:         d.Modules,
		readyChecks:     d.ReadyChecks,
		backuper:        d.Backup,
		collector:       d.Collector,
		moduleCollector: d.ModuleCollector,
		audit:           d.Audit,
		cluster:         d.Cluster,
		verifier:        token.Verifier{Keys: d.Keys, Revoked: d.Revoked},
		remote:          newRemoteCache(cfg.MaxBodyBytes, d.Now, cfg.AllowPrivateCodeURLs),
		idPrefix:        hex.EncodeToString(b[:]),
	}
	if cfg.NodeID != "" {
		s.node = []string{cfg.NodeID}[:1:1] // an append copies
	}
	s.metrics = promhttp.HandlerFor(d.Metrics, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(d.Logger.Handler(), slog.LevelWarn)})
	s.e = s.routes()
	ed.Register(s.e)
	return s, nil
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler { return s.e }

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(s.requestID, s.auditLog, s.recoverPanic, s.admit)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)

	e.POST("/api/tokens/issue", s.issueToken)
	e.GET("/api/tokens/inspect", s.inspectToken)
	e.POST("/api/tokens/revoke", s.revokeToken)

	e.GET("/api/webtask", s.listAllWebtasks)
	e.GET("/api/webtask/:container", s.listWebtasks)
	e.PUT("/api/webtask/:container/:name", s.putWebtask)
	e.GET("/api/webtask/:container/:name", s.getWebtask)
	e.DELETE("/api/webtask/:container/:name", s.deleteWebtask)
	e.GET("/api/logs/tenant/:container", s.streamLogs)
	e.GET("/api/webtask/:container/:name/data", s.getData)
	e.PUT("/api/webtask/:container/:name/data", s.putData)

	e.GET("/api/cron/:container", s.listCronJobs)
	e.PUT("/api/cron/:container/:name", s.putCronJob)
	e.GET("/api/cron/:container/:name", s.getCronJob)
	e.DELETE("/api/cron/:container/:name", s.deleteCronJob)
	e.PUT("/api/cron/:container/:name/state", s.setCronJobState)
	e.GET("/api/cron/:container/:name/history", s.cronHistory)
	e.GET("/api/cron/:container/:name/next", s.cronNext)
	e.POST("/api/syntax/:container", s.checkSyntax)

	e.Any("/api/run/:container", s.runUnnamed)
	e.Any("/api/run/:container/:name", s.runNamed)
	e.Any("/api/run/:container/:name/*", s.runNamed)

	e.POST("/api/env/node/modules", s.requestModules)
	e.GET("/api/env/node/modules", s.listModules)
	e.GET("/api/env/node/modules/:name", s.moduleVersions)
	e.GET("/api/env/node/modules/:scope/:name", s.moduleVersions)
	e.DELETE("/api/env/node/modules/:name", s.removeModule)
	e.DELETE("/api/env/node/modules/:scope/:name", s.removeModule)

	e.GET("/api/admin/sandboxes", s.listSandboxes)
	e.DELETE("/api/admin/sandboxes/:id", s.killSandbox)
	e.GET("/api/admin/sandboxes/:id", s.inspectSandbox)
	e.GET("/api/admin/status", s.fleetStatus)
	e.GET("/api/admin/containers/:container/limits", s.getLimits)
	e.PUT("/api/admin/containers/:container/limits", s.putLimits)
	e.DELETE("/api/admin/containers/:container/limits", s.deleteLimits)
	e.GET("/metrics", s.serveMetrics)
	e.GET("/api/admin/cluster/members", s.listMembers)
	e.GET("/api/cluster/logs/:container", s.peerLogs)
	e.GET("/api/admin/keys", s.listKeys)
	e.POST("/api/admin/keys/rotate", s.rotateKeys)
	e.POST("/api/admin/backup", s.backup)
	e.POST("/api/admin/gc", s.gc)
	e.GET("/api/admin/audit", s.listAudit)
	e.POST("/api/admin/keys/:kid/retire", s.retireKey)
	return e
}

// requestID gives every request an id (x-wt-request-id response header):
// a per-process random prefix and a counter, one allocation; and names the
// node serving it (x-wt-node).
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		var buf [40]byte
		b := append(buf[:0], s.idPrefix...)
		b = append(b, '-')
		b = strconv.AppendUint(b, s.idSeq.Add(1), 36)
		h := c.Response().Header()
		h[HeaderRequestID] = []string{string(b)}
		if s.node != nil {
			h[HeaderNode] = s.node
		}
		return next(c)
	}
}

// ctxBody is the echo context key of the request's *httplimit.Body.
const ctxBody = "webtaskd.body"

var errClientBusy = errdefs.New(errdefs.ErrExhausted, "too many requests in flight from this client")

// admit applies the per-client cap of requests behind trusted proxies and
// gives the request's body bytes back to the budget when it ends.
func (s *Server) admit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.Guard == nil {
			return next(c)
		}
		release, ok := s.cfg.Guard.Admit(c.Request())
		if !ok {
			return errClientBusy
		}
		defer release()
		acct := s.cfg.Guard.NewBody()
		c.Set(ctxBody, acct)
		defer acct.Release()
		return next(c)
	}
}

func reqID(c echo.Context) string {
	if v := c.Response().Header()[HeaderRequestID]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// recoverPanic turns a handler panic into a logged 500.
func (s *Server) recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.log.Error("handler panic", "req_id", reqID(c), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = errors.New("handler panic") // no kind: 500 "internal server error"
			}
		}()
		return next(c)
	}
}

// baseURL is the public base URL for links.
func (s *Server) baseURL(c echo.Context) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	return c.Scheme() + "://" + c.Request().Host
}

func (s *Server) runURL(c echo.Context, container, name string) string {
	return runURLAt(s.baseURL(c), container, name)
}

// runURLAt is the URL of webtask container/name ("": unnamed) under base.
func runURLAt(base, container, name string) string {
	u := base + "/api/run/" + pathEscape(container)
	if name != "" {
		u += "/" + pathEscape(name)
	}
	return u
}

func pathEscape(s string) string { return url.PathEscape(s) }
