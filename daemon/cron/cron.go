// Package cron runs webtask cron jobs: a robfig/cron/v3 scheduler (standard
// 5-field specs, per-job IANA time zone) that, for every active job, POSTs
// the job record to its named webtask and records the outcome in the store.
//
// Runs go in-process through the API's own http.Handler (POST
// /api/run/{c}/{n} with "Authorization: Bearer <job token>"), not over
// loopback HTTP: a run then takes exactly the path of an external call
// (request id, rate limits, stored-token checks, sandbox queue, error
// mapping) without depending on the listen address being reachable from
// the daemon itself (0.0.0.0, a TLS proxy in front, firewalls), and without
// a socket per run. The scheduler is stopped before the HTTP server, so the
// daemon's shutdown bounds runs the same way it bounds external calls.
package cron

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	rcron "github.com/robfig/cron/v3"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/token"
)

// Defaults of Config.
const (
	// DefaultRunTimeout bounds one run (the webtask's own exec timeout is
	// usually shorter and answers first).
	DefaultRunTimeout = 2 * time.Minute
	// DefaultMaxResultBodyBytes is how much of a run's response body is kept
	// in its history entry.
	DefaultMaxResultBodyBytes = 4 << 10
	// DefaultTZ is the time zone of jobs created without one.
	DefaultTZ = types.DefaultCronTZ
	// recordTimeout bounds writing one result to the store.
	recordTimeout = 10 * time.Second
)

// ErrInvalid: a schedule or time zone does not parse
// (errdefs.ErrInvalid). The error's message says which and why.
var ErrInvalid = errdefs.New(errdefs.ErrInvalid, "invalid cron job")

// invalid is an ErrInvalid with the reason in its caller-facing message.
func invalid(format string, args ...any) error {
	return errdefs.Errorf(ErrInvalid, "%s: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Parse validates a 5-field schedule (or a robfig descriptor such as
// @hourly) in the IANA time zone tz ("" means DefaultTZ) and returns it.
func Parse(schedule, tz string) (rcron.Schedule, error) {
	if tz == "" {
		tz = DefaultTZ
	}
	schedule = strings.TrimSpace(schedule)
	if schedule == "" {
		return nil, invalid("the schedule is empty")
	}
	if strings.HasPrefix(schedule, "TZ=") || strings.HasPrefix(schedule, "CRON_TZ=") {
		return nil, invalid("give the time zone in tz, not in the schedule")
	}
	if strings.ContainsAny(tz, " \t\n") || tz == "Local" {
		return nil, invalid("unknown time zone %q", tz)
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return nil, invalid("unknown time zone %q", tz)
	}
	s, err := rcron.ParseStandard("CRON_TZ=" + tz + " " + schedule)
	if err != nil {
		return nil, invalid("schedule %q: %v", schedule, err)
	}
	return s, nil
}

// Store is what the scheduler needs from persistence (*store.Store).
type Store interface {
	ListCronJobs(ctx context.Context, o store.CronListOptions) ([]*store.CronJob, error)
	GetCronJob(ctx context.Context, container, name string) (*store.CronJob, error)
	GetWebtask(ctx context.Context, container, name string) (*store.Webtask, error)
	AddCronResult(ctx context.Context, container, name string, r *store.CronResult) error
}

// Config configures a Scheduler.
type Config struct {
	Store Store
	// Host is the Host header of run requests (the daemon's public host),
	// so webtasks see the same host as for external calls. Start may
	// set it once the listen address is known.
	Host string
	// RunTimeout bounds one run (default DefaultRunTimeout).
	RunTimeout time.Duration
	// MaxResultBodyBytes caps the body kept per result (default
	// DefaultMaxResultBodyBytes).
	MaxResultBodyBytes int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// Cluster, when set, makes this scheduler one of a cluster's: each
	// tick is claimed and runs on one member only (claim.go).
	Cluster *Cluster
}

type key struct{ container, name string }

// Scheduler runs the active cron jobs of the store. Start loads them; Put
// and Remove keep it in step with API changes; Stop ends it.
type Scheduler struct {
	cfg Config
	log *slog.Logger
	c   *rcron.Cron

	mu      sync.Mutex
	h       http.Handler
	entries map[key]rcron.EntryID
	specs   map[key]string // schedule and zone of each entry
	running map[key]bool   // a run in progress: the next tick is skipped
	started bool
	stopped bool

	runCtx     context.Context // canceled by Stop: aborts runs in flight
	cancelRun  context.CancelFunc
	expireDone chan struct{} // closed when the claim expiry loop ended (cluster)
}

// New returns a scheduler that is not running yet.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Store == nil {
		return nil, errors.New("cron: Store is required")
	}
	if cfg.RunTimeout < 0 || cfg.MaxResultBodyBytes < 0 {
		return nil, errors.New("cron: RunTimeout and MaxResultBodyBytes must not be negative")
	}
	if cfg.RunTimeout == 0 {
		cfg.RunTimeout = DefaultRunTimeout
	}
	if cfg.MaxResultBodyBytes == 0 {
		cfg.MaxResultBodyBytes = DefaultMaxResultBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Cluster != nil && cfg.Cluster.Claims == nil {
		return nil, errors.New("cron: Cluster.Claims is required")
	}
	s := &Scheduler{
		cfg: cfg, log: cfg.Logger,
		entries: map[key]rcron.EntryID{}, specs: map[key]string{}, running: map[key]bool{},
	}
	s.runCtx, s.cancelRun = context.WithCancel(context.Background())
	// Each job carries its own zone (CRON_TZ); the scheduler's clock is UTC.
	// Recover keeps a panicking run from taking the daemon down.
	logger := cronLogger{cfg.Logger}
	s.c = rcron.New(rcron.WithLocation(time.UTC), rcron.WithLogger(logger), rcron.WithChain(rcron.Recover(logger)))
	return s, nil
}

// Start loads every active job from the store and starts the clock; runs
// go through h (the API handler) with Host host ("" keeps Config.Host).
// Call it once.
func (s *Scheduler) Start(ctx context.Context, h http.Handler, host string) error {
	if h == nil {
		return errors.New("cron: nil handler")
	}
	jobs, err := s.cfg.Store.ListCronJobs(ctx, store.CronListOptions{State: store.CronActive})
	if err != nil {
		return fmt.Errorf("cron: loading jobs: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return errors.New("cron: Start called twice or after Stop")
	}
	s.h = h
	if host != "" {
		s.cfg.Host = host
	}
	for _, j := range jobs {
		if err := s.putLocked(j); err != nil {
			// A job stored by an older binary with a spec this one rejects
			// must not stop the daemon: skip it, loudly.
			s.log.Warn("cron job not scheduled", "container", j.Container, "name", j.Name, "err", err)
		}
	}
	s.c.Start()
	s.started = true
	if cl := s.cfg.Cluster; cl != nil {
		every := cl.ExpireEvery
		if every <= 0 {
			every = 5 * time.Second
		}
		s.expireDone = make(chan struct{})
		go s.expireLoop(every)
	}
	s.log.Info("cron scheduler started", "jobs", len(s.entries))
	return nil
}

// Put schedules j (replacing its previous schedule), or unschedules it when
// it is inactive. A run in progress is not interrupted.
func (s *Scheduler) Put(j *store.CronJob) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	return s.putLocked(j)
}

func (s *Scheduler) putLocked(j *store.CronJob) error {
	k := key{j.Container, j.Name}
	spec := j.TZ + " " + j.Schedule
	if _, ok := s.entries[k]; ok && j.State == store.CronActive && s.specs[k] == spec {
		return nil // unchanged: keep the entry (and its next tick)
	}
	s.removeLocked(k)
	if j.State != store.CronActive {
		return nil
	}
	sched, err := Parse(j.Schedule, j.TZ)
	if err != nil {
		return err
	}
	r := &run{s: s, k: k}
	r.id = s.c.Schedule(sched, r)
	s.entries[k], s.specs[k] = r.id, spec
	return nil
}

func (s *Scheduler) removeLocked(k key) {
	if id, ok := s.entries[k]; ok {
		s.c.Remove(id)
		delete(s.entries, k)
		delete(s.specs, k)
	}
}

// Sync schedules container/name as the store has it now, or unschedules it
// when it is gone (a cluster member told that another changed it).
func (s *Scheduler) Sync(ctx context.Context, container, name string) error {
	j, err := s.cfg.Store.GetCronJob(ctx, container, name)
	if errors.Is(err, store.ErrNotFound) {
		s.Remove(container, name)
		return nil
	}
	if err != nil {
		return err
	}
	return s.Put(j)
}

// Reload brings every schedule in step with the store: active jobs
// scheduled (unchanged ones keep their entries), the others unscheduled
// (a cluster member that may have missed changes).
func (s *Scheduler) Reload(ctx context.Context) error {
	jobs, err := s.cfg.Store.ListCronJobs(ctx, store.CronListOptions{State: store.CronActive})
	if err != nil {
		return fmt.Errorf("cron: reloading jobs: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	active := map[key]bool{}
	for _, j := range jobs {
		active[key{j.Container, j.Name}] = true
		if err := s.putLocked(j); err != nil {
			s.log.Warn("cron job not scheduled", "container", j.Container, "name", j.Name, "err", err)
		}
	}
	for k := range s.entries {
		if !active[k] {
			s.removeLocked(k)
		}
	}
	return nil
}

// Validate checks a schedule in the time zone tz as Put would (Parse).
func (s *Scheduler) Validate(schedule, tz string) error {
	_, err := Parse(schedule, tz)
	return err
}

// Next returns the n run times of schedule in tz after from (the editor's
// preview); its error is Validate's.
func (s *Scheduler) Next(schedule, tz string, from time.Time, n int) ([]time.Time, error) {
	sch, err := Parse(schedule, tz)
	if err != nil {
		return nil, err
	}
	out := make([]time.Time, 0, n)
	for t := from; len(out) < n; {
		t = sch.Next(t)
		if t.IsZero() {
			break // a schedule that never fires again
		}
		out = append(out, t)
	}
	return out, nil
}

// Record is the wire shape of j with its last result (the package's
// Record function).
func (s *Scheduler) Record(j *store.CronJob, last *store.CronResult, now time.Time) types.CronJob {
	return Record(j, last, now)
}

// Remove unschedules container/name (no-op when not scheduled).
func (s *Scheduler) Remove(container, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(key{container, name})
}

// Scheduled reports whether container/name is scheduled (for tests and
// the admin view).
func (s *Scheduler) Scheduled(container, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.entries[key{container, name}]
	return ok
}

// Stop stops the clock, cancels runs in flight and waits for them to
// record their results, bounded by ctx. Idempotent.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()
	done := s.c.Stop() // no new runs; done when the running ones return
	s.cancelRun()
	if s.expireDone != nil {
		<-s.expireDone // returns at once once runCtx is canceled
	}
	select {
	case <-done.Done():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cron: runs still in flight at shutdown: %w", ctx.Err())
	}
}

// run is one scheduled job as robfig sees it.
type run struct {
	s  *Scheduler
	k  key
	id rcron.EntryID
}

// Run is called by robfig on each tick, in its own goroutine (robfig's
// Stop waits for it).
func (r *run) Run() {
	s := r.s
	s.mu.Lock()
	if s.running[r.k] {
		s.mu.Unlock()
		s.log.Info("cron job still running; this tick is skipped", "container", r.k.container, "name", r.k.name)
		return
	}
	s.running[r.k] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, r.k)
		s.mu.Unlock()
	}()
	// Prev is the tick this run belongs to (robfig sets it right after
	// starting the job; the snapshot is served once the tick is handled).
	scheduled := s.c.Entry(r.id).Prev
	started := s.cfg.Now().UTC()
	if scheduled.IsZero() || scheduled.After(started) {
		scheduled = started.Truncate(time.Second)
	}
	s.fire(r.k, scheduled.UTC(), started)
}

// fire runs tick scheduled of job k when this member wins its claim (always
// on a single host).
func (s *Scheduler) fire(k key, scheduled, started time.Time) {
	if !s.claim(k, scheduled) {
		return
	}
	s.runOnce(k, scheduled, started)
}

// RunNow runs container/name once, as a tick scheduled now would, and
// returns when its result is recorded (for tests and manual triggers).
func (s *Scheduler) RunNow(container, name string) error {
	k := key{container, name}
	s.mu.Lock()
	if s.h == nil || s.stopped {
		s.mu.Unlock()
		return errdefs.New(errdefs.ErrUnavailable, "the cron scheduler is not running")
	}
	if s.running[k] {
		s.mu.Unlock()
		return errdefs.New(errdefs.ErrConflict, "the cron job is already running")
	}
	s.running[k] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, k)
		s.mu.Unlock()
	}()
	now := s.cfg.Now().UTC()
	return s.runOnce(k, now, now)
}

// readFailed handles err, the failed read of job k's what ("job",
// "webtask") before a run, and returns it: not found means deleted behind
// our back (a job goes with its webtask), so k stops being scheduled;
// anything else is logged.
func (s *Scheduler) readFailed(log *slog.Logger, k key, what string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		s.Remove(k.container, k.name)
		return err
	}
	log.Warn("cron run: reading the "+what+" failed", "err", err)
	return err
}

// runOnce runs the job k and records the outcome.
func (s *Scheduler) runOnce(k key, scheduled, started time.Time) error {
	log := s.log.With("container", k.container, "name", k.name)
	ctx, cancel := context.WithTimeout(s.runCtx, s.cfg.RunTimeout)
	defer cancel()
	job, err := s.cfg.Store.GetCronJob(ctx, k.container, k.name)
	if err != nil {
		return s.readFailed(log, k, "job", err)
	}
	if job.State != store.CronActive {
		s.Remove(k.container, k.name)
		return nil
	}
	w, err := s.cfg.Store.GetWebtask(ctx, k.container, k.name)
	if err != nil {
		return s.readFailed(log, k, "webtask", err)
	}
	res := s.call(ctx, job, w, scheduled, started)
	rctx, rcancel := context.WithTimeout(context.Background(), recordTimeout)
	defer rcancel()
	if err := s.cfg.Store.AddCronResult(rctx, k.container, k.name, res); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			log.Warn("cron run: recording the result failed", "err", err)
		}
		return err
	}
	log.Debug("cron run", "type", res.Type, "status", res.StatusCode, "duration", res.CompletedAt.Sub(res.StartedAt))
	return nil
}

// RunToken is the token a run of job sends: the job's own, except that a
// job without one, or whose token is an earlier token of the same named
// webtask, sends the webtask's current token (so `wt update` does not
// break a cron-authenticated webtask: wt-cli issue #157).
func RunToken(job *store.CronJob, w *store.Webtask) string {
	if job.Token == "" {
		return w.Token
	}
	if c, _, err := token.ParseUnverified(job.Token); err == nil && c.Jtn == job.Name {
		if cn, ok := c.SingleContainer(); ok && cn == job.Container {
			return w.Token
		}
	}
	return job.Token
}

// cronLogger adapts slog to robfig's logger (it logs panics of jobs).
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug("cron: "+msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append(kv, "err", err)...)
}
