package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/rootfs"
	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// Defaults of Config: the single source of the sandbox settings' defaults
// (the daemon's flags start from DefaultConfig).
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
	// DefaultPoolSize, DefaultMaxSandboxes and DefaultFreezeAfter are
	// DefaultConfig's; their zero value means "off" in a Config.
	// DefaultPoolSize: 4 ready sandboxes absorb the first 200 ms of a burst
	// of 20 never-seen containers a second while the refill gets ahead
	// (with 2 the third and fourth waited 30-80 ms for a boot here).
	DefaultPoolSize     = 4
	DefaultMaxSandboxes = 1000
	DefaultFreezeAfter  = 2 * time.Second
	// DefaultMaxResponseBytes is the response body budget of one call.
	DefaultMaxResponseBytes = 256 << 20
	// DefaultStreamIdleTimeout and DefaultStreamTimeout bound a streamed
	// response once its head arrived.
	DefaultStreamIdleTimeout = 30 * time.Second
	DefaultStreamTimeout     = 10 * time.Minute
)

// DefaultLimits are the limits of a sandbox when nothing else is configured.
var DefaultLimits = types.Limits{MemoryMB: 256, CPUs: 1, Pids: 128, TmpMB: 16}

// DefaultRlimits are the process resource limits of every sandbox when
// nothing else is configured.
var DefaultRlimits = Rlimits{MaxOpenFiles: 4096, MaxLockedMemoryBytes: 64 << 10}

// Rlimits are the process resource limits (setrlimit) of a sandbox's
// processes, soft and hard alike: a webtask cannot raise them (it holds
// no capability). Besides these, RLIMIT_CORE is always 0 (a core dump of
// the runtime would hold secrets, and would fill /tmp) and RLIMIT_NPROC is
// the sandbox's pids limit (tasks of the sandbox's user, which the kernel
// counts per user namespace: per sandbox), a second bound under the pids
// cgroup.
type Rlimits struct {
	// MaxOpenFiles is RLIMIT_NOFILE: open file descriptors per process.
	MaxOpenFiles uint64
	// MaxLockedMemoryBytes is RLIMIT_MEMLOCK: memory a process may lock
	// (mlock) in bytes.
	MaxLockedMemoryBytes uint64
}

// Bounds of the limits, daemon defaults and per-container overrides alike.
const (
	minMemoryMB = 32
	maxMemoryMB = 1 << 20
	minCPUs     = 0.01
	maxCPUs     = 1024
	// minPids: one node process is about 7 tasks (libuv pool, V8 workers).
	minPids          = 16
	maxPids          = 1 << 16
	minExecTimeoutMS = 10
	maxExecTimeoutMS = 3_600_000
	maxConcurrency   = 10_000
	maxPoolSize      = 1024
	// RLIMIT_NOFILE bounds: node needs a few dozen descriptors; the
	// kernel's default fs.nr_open is 1<<20.
	minOpenFiles = 64
	maxOpenFiles = 1 << 20
	// minResponseBytes: a budget must fit an error body.
	minResponseBytes = 1024
	maxResponseBytes = 1 << 40
)

// Config configures a Manager.
type Config struct {
	// StateDir holds libcontainer's state (StateDir/containers) and the
	// rootfs skeleton (StateDir/rootfs). It must not contain the daemon
	// binary's directory nor sit inside it: runc seals /proc/self/exe with
	// an overlay over both, which fails when they nest.
	StateDir string
	// CgroupParent is the absolute parent cgroup of every sandbox.
	CgroupParent string
	// Limits are the limits of every sandbox.
	Limits types.Limits
	// Rlimits are the process resource limits of every sandbox (default
	// DefaultRlimits).
	Rlimits Rlimits
	// IdleTimeout: a sandbox idle this long is destroyed.
	IdleTimeout time.Duration
	// ExecTimeout bounds one invocation until its response head (status
	// and headers); on expiry the call fails with ErrTimeout and the
	// sandbox is recycled.
	ExecTimeout time.Duration
	// MaxResponseBytes is the response body budget of one call (a
	// container may override it); a streamed body past it is cut off
	// (ErrResponseTooLarge), a complete one fails the call.
	MaxResponseBytes int64
	// StreamIdleTimeout bounds the wait for the next piece of a streamed
	// body; StreamTimeout bounds a streamed body as a whole (from its
	// head). Past either the stream is cut off (ErrStreamTimeout).
	StreamIdleTimeout time.Duration
	StreamTimeout     time.Duration
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
	// user code) wait for a never-seen container at rest; 0 disables the
	// pool. While never-seen containers arrive faster than it refills, the
	// pool grows above it (bounded, pool.go) and shrinks back when they
	// stop. Pool sandboxes boot with Limits and serve containers whose
	// memory limit equals Limits.MemoryMB (V8's heap limit is fixed at
	// boot).
	PoolSize int
	// MaxSandboxes caps the sandboxes assigned to containers (the pool comes
	// on top); starting one more evicts the least recently used idle one.
	// 0 means no cap.
	MaxSandboxes int
	// MemoryBudgetBytes is the memory limit of CgroupParent, which bounds the
	// whole fleet; 0 means no budget.
	MemoryBudgetBytes int64
	// SharePages lets the kernel merge the identical memory pages of
	// sandboxes (KSM; Linux 6.4+): an idle sandbox is charged ~3 MiB
	// instead of ~7.3 MiB. It turns KSM on if the host has it off, and
	// costs some isolation between sandboxes (docs/SECURITY.md); off by
	// default.
	SharePages bool
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

	// NewSandbox starts one sandbox; ctx bounds the start only. nil means
	// libcontainer sandboxes under StateDir and CgroupParent: NewManager
	// then sweeps a previous daemon's leftovers, builds the rootfs skeleton
	// and creates the parent cgroup. With any other constructor (tests'
	// fakes) the Manager touches neither the host nor StateDir.
	NewSandbox func(ctx context.Context, o StartOptions) (Sandbox, error)
}

// DefaultConfig returns every setting at its default, the pool, the
// sandbox cap and freezing on (the daemon's defaults). A zero Config gets
// the same through SetDefaults, except that the pool, the cap and
// freezing stay off.
func DefaultConfig() Config {
	c := Config{PoolSize: DefaultPoolSize, MaxSandboxes: DefaultMaxSandboxes, FreezeAfter: DefaultFreezeAfter}
	c.SetDefaults()
	c.Logger = nil
	return c
}

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	setDefault(&c.StateDir, DefaultStateDir)
	setDefault(&c.CgroupParent, DefaultCgroupParent)
	setDefault(&c.Limits.MemoryMB, DefaultLimits.MemoryMB)
	setDefault(&c.Limits.CPUs, DefaultLimits.CPUs)
	setDefault(&c.Limits.Pids, DefaultLimits.Pids)
	setDefault(&c.Limits.TmpMB, DefaultLimits.TmpMB)
	setDefault(&c.Rlimits.MaxOpenFiles, DefaultRlimits.MaxOpenFiles)
	setDefault(&c.Rlimits.MaxLockedMemoryBytes, DefaultRlimits.MaxLockedMemoryBytes)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.ExecTimeout, DefaultExecTimeout)
	setDefault(&c.MaxResponseBytes, DefaultMaxResponseBytes)
	setDefault(&c.StreamIdleTimeout, DefaultStreamIdleTimeout)
	setDefault(&c.StreamTimeout, DefaultStreamTimeout)
	setDefault(&c.StartTimeout, DefaultStartTimeout)
	setDefault(&c.LogLimitBytes, DefaultLogLimitBytes)
	setDefault(&c.MaxConcurrency, DefaultMaxConcurrency)
	setDefault(&c.QueueTimeout, DefaultQueueTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// Validate checks a Config (after SetDefaults). Errors wrap ErrConfig.
func (c Config) Validate() error {
	switch {
	case !filepath.IsAbs(c.StateDir) || filepath.Clean(c.StateDir) == "/":
		return fmt.Errorf("%w: state dir must be an absolute path other than /: %q", ErrConfig, c.StateDir)
	case !filepath.IsAbs(c.CgroupParent) || filepath.Clean(c.CgroupParent) == "/":
		return fmt.Errorf("%w: cgroup parent must be an absolute path other than /: %q", ErrConfig, c.CgroupParent)
	}
	if err := validateLimits(c.Limits); err != nil {
		return err
	}
	switch {
	case c.Limits.TmpMB < 1:
		return fmt.Errorf("%w: tmp size must be at least 1 MiB", ErrConfig)
	case c.Rlimits.MaxOpenFiles < minOpenFiles || c.Rlimits.MaxOpenFiles > maxOpenFiles:
		return fmt.Errorf("%w: max open files must be between %d and %d", ErrConfig, minOpenFiles, maxOpenFiles)
	case c.Rlimits.MaxLockedMemoryBytes > uint64(c.Limits.MemoryMB)<<20:
		return fmt.Errorf("%w: max locked memory must not exceed the memory limit", ErrConfig)
	case c.IdleTimeout <= 0 || c.ExecTimeout <= 0 || c.StartTimeout <= 0 || c.StreamIdleTimeout <= 0 || c.StreamTimeout <= 0:
		return fmt.Errorf("%w: timeouts must be positive", ErrConfig)
	case c.MaxResponseBytes < minResponseBytes || c.MaxResponseBytes > maxResponseBytes:
		return fmt.Errorf("%w: max response bytes must be between %d and %d", ErrConfig, minResponseBytes, int64(maxResponseBytes))
	case c.LogLimitBytes < 0:
		return fmt.Errorf("%w: log limit must not be negative", ErrConfig)
	case c.PoolSize < 0 || c.PoolSize > maxPoolSize:
		return fmt.Errorf("%w: pool size must be in [0, %d]", ErrConfig, maxPoolSize)
	case c.MaxSandboxes < 0:
		return fmt.Errorf("%w: max sandboxes must not be negative", ErrConfig)
	case c.MemoryBudgetBytes < 0 || c.MemoryBudgetBytes != 0 && c.MemoryBudgetBytes < int64(c.Limits.MemoryMB)<<20:
		return fmt.Errorf("%w: memory budget must be 0 (none) or at least one sandbox's memory limit", ErrConfig)
	case c.FreezeAfter < 0:
		return fmt.Errorf("%w: freeze-after must not be negative", ErrConfig)
	case c.MaxConcurrency < 1 || c.MaxConcurrency > maxConcurrency || c.QueueTimeout <= 0:
		return fmt.Errorf("%w: max concurrency must be in [1, %d] and the queue timeout positive", ErrConfig, maxConcurrency)
	}
	if c.NewSandbox == nil {
		if exe, err := os.Executable(); err == nil {
			dir := filepath.Dir(exe)
			if within(c.StateDir, dir) || within(dir, c.StateDir) {
				return fmt.Errorf("%w: state dir %s must not be inside or around the binary's directory %s (runc cannot seal /proc/self/exe then)",
					ErrConfig, c.StateDir, dir)
			}
		}
	}
	return nil
}

// validateLimits checks the daemon's default limits.
func validateLimits(l types.Limits) error {
	switch {
	case l.MemoryMB < minMemoryMB || l.MemoryMB > maxMemoryMB:
		return fmt.Errorf("%w: memory_mb must be between %d and %d", ErrConfig, minMemoryMB, maxMemoryMB)
	case l.CPUs < minCPUs || l.CPUs > maxCPUs:
		return fmt.Errorf("%w: cpus must be between %v and %v", ErrConfig, minCPUs, maxCPUs)
	case l.Pids < minPids || l.Pids > maxPids:
		return fmt.Errorf("%w: pids must be between %d and %d (node uses ~7 tasks)", ErrConfig, minPids, maxPids)
	}
	return nil
}

// ValidateOverride checks per-container overrides (zero fields inherit the
// daemon defaults). Errors wrap ErrConfig.
func ValidateOverride(o types.Limits) error {
	switch {
	case o.MemoryMB != 0 && (o.MemoryMB < minMemoryMB || o.MemoryMB > maxMemoryMB):
		return fmt.Errorf("%w: memory_mb must be between %d and %d", ErrConfig, minMemoryMB, maxMemoryMB)
	case o.CPUs != 0 && (o.CPUs < minCPUs || o.CPUs > maxCPUs):
		return fmt.Errorf("%w: cpus must be between %v and %v", ErrConfig, minCPUs, maxCPUs)
	case o.Pids != 0 && (o.Pids < minPids || o.Pids > maxPids):
		return fmt.Errorf("%w: pids must be between %d and %d (node uses ~7 tasks)", ErrConfig, minPids, maxPids)
	case o.TmpMB != 0:
		return fmt.Errorf("%w: tmp_mb is daemon-wide, not per container", ErrConfig)
	case o.ExecTimeoutMS != 0 && (o.ExecTimeoutMS < minExecTimeoutMS || o.ExecTimeoutMS > maxExecTimeoutMS):
		return fmt.Errorf("%w: exec_timeout_ms must be between %d and %d", ErrConfig, minExecTimeoutMS, maxExecTimeoutMS)
	case o.MaxConcurrency != 0 && (o.MaxConcurrency < 1 || o.MaxConcurrency > maxConcurrency):
		return fmt.Errorf("%w: max_concurrency must be between 1 and %d", ErrConfig, maxConcurrency)
	case o.MaxResponseBytes != 0 && (o.MaxResponseBytes < minResponseBytes || o.MaxResponseBytes > maxResponseBytes):
		return fmt.Errorf("%w: max_response_bytes must be between %d and %d", ErrConfig, minResponseBytes, int64(maxResponseBytes))
	case o.MemoryMB < 0 || o.CPUs < 0 || o.Pids < 0 || o.ExecTimeoutMS < 0 || o.MaxConcurrency < 0:
		return fmt.Errorf("%w: limits must not be negative", ErrConfig)
	}
	return nil
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
