// Package sandbox runs webtask code in Linux sandboxes built with
// libcontainer: one sandbox per webtask container, each a long-lived Node
// runtime agent that serves many invocations without starting a process.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// Errors returned by sandboxes and the Manager. Callers match them with
// errors.Is; the API maps them to HTTP status codes.
var (
	// ErrDestroyed: the sandbox was destroyed (by Destroy, idle expiry,
	// eviction or an admin kill) before or while the call ran.
	ErrDestroyed = errors.New("sandbox destroyed")
	// ErrTimeout: the invocation ran past its exec timeout; the sandbox is recycled.
	ErrTimeout = errors.New("webtask exceeded the execution time limit")
	// ErrCrashed: the runtime exited or crashed during the call.
	ErrCrashed = errors.New("webtask runtime exited unexpectedly")
	// ErrOOM: the runtime was killed at the sandbox's memory limit (seen
	// through the cgroup, not guessed).
	ErrOOM = errors.New("webtask exceeded the memory limit")
	// ErrStart: a sandbox could not be started.
	ErrStart = errors.New("sandbox could not be started")
	// ErrBusy: the container already runs its maximum of concurrent calls
	// and the call waited in the queue past the queue timeout.
	ErrBusy = errors.New("too many concurrent calls to this webtask container; retry later")
	// ErrCapacity: the daemon runs --max-sandboxes sandboxes and none of them
	// is idle enough to be evicted.
	ErrCapacity = errors.New("no sandbox capacity left; retry later")
)

// Limits are the resource limits of one sandbox.
type Limits struct {
	// MemoryMB is the cgroup memory limit in MiB; V8's heap limit follows it.
	MemoryMB int `json:"memory_mb"`
	// CPUs is the CPU quota in cores (1 = one full core).
	CPUs float64 `json:"cpus"`
	// Pids caps tasks (processes and threads) in the sandbox.
	Pids int `json:"pids"`
	// TmpMB is the size of the sandbox's tmpfs /tmp in MiB (daemon-wide:
	// not overridable per container).
	TmpMB int `json:"tmp_mb"`
	// ExecTimeoutMS bounds one invocation in milliseconds; 0 means the
	// Manager's ExecTimeout.
	ExecTimeoutMS int64 `json:"exec_timeout_ms,omitempty"`
	// MaxConcurrency caps the calls running at once in the container's
	// sandbox; 0 means the Manager's MaxConcurrency.
	MaxConcurrency int `json:"max_concurrency,omitempty"`
}

// DefaultLimits are the limits of a sandbox when nothing else is configured.
var DefaultLimits = Limits{MemoryMB: 256, CPUs: 1, Pids: 128, TmpMB: 16}

// Override returns l with every non-zero field of o applied (TmpMB is
// daemon-wide and never overridden).
func (l Limits) Override(o Limits) Limits {
	if o.MemoryMB != 0 {
		l.MemoryMB = o.MemoryMB
	}
	if o.CPUs != 0 {
		l.CPUs = o.CPUs
	}
	if o.Pids != 0 {
		l.Pids = o.Pids
	}
	if o.ExecTimeoutMS != 0 {
		l.ExecTimeoutMS = o.ExecTimeoutMS
	}
	if o.MaxConcurrency != 0 {
		l.MaxConcurrency = o.MaxConcurrency
	}
	return l
}

// ValidateOverride checks per-container overrides (zero fields inherit the
// daemon defaults). Errors wrap ErrConfig.
func ValidateOverride(o Limits) error {
	switch {
	case o.MemoryMB != 0 && (o.MemoryMB < 32 || o.MemoryMB > 1<<20):
		return fmt.Errorf("%w: memory_mb must be between 32 and 1048576", ErrConfig)
	case o.CPUs != 0 && (o.CPUs < 0.01 || o.CPUs > 1024):
		return fmt.Errorf("%w: cpus must be between 0.01 and 1024", ErrConfig)
	case o.Pids != 0 && (o.Pids < 16 || o.Pids > 1<<16):
		return fmt.Errorf("%w: pids must be between 16 and 65536 (node uses ~7 tasks)", ErrConfig)
	case o.TmpMB != 0:
		return fmt.Errorf("%w: tmp_mb is daemon-wide, not per container", ErrConfig)
	case o.ExecTimeoutMS != 0 && (o.ExecTimeoutMS < 10 || o.ExecTimeoutMS > 3_600_000):
		return fmt.Errorf("%w: exec_timeout_ms must be between 10 and 3600000", ErrConfig)
	case o.MaxConcurrency != 0 && (o.MaxConcurrency < 1 || o.MaxConcurrency > 10_000):
		return fmt.Errorf("%w: max_concurrency must be between 1 and 10000", ErrConfig)
	case o.MemoryMB < 0 || o.CPUs < 0 || o.Pids < 0 || o.ExecTimeoutMS < 0 || o.MaxConcurrency < 0:
		return fmt.Errorf("%w: limits must not be negative", ErrConfig)
	}
	return nil
}

// State is the lifecycle state of a sandbox.
type State string

const (
	// StatePooled: booted, never ran user code, waiting in the pool.
	StatePooled State = "pooled"
	// StateRunning: assigned to a container and thawed.
	StateRunning State = "running"
	// StatePaused: frozen (cgroup freezer) after a short idle period;
	// thawed by the next call.
	StatePaused    State = "paused"
	StateDestroyed State = "destroyed"
)

// Served tells how a call got its sandbox (the x-wt-sandbox header).
type Served string

const (
	// ServedWarm: the container's sandbox was already running (or frozen).
	ServedWarm Served = "warm"
	// ServedPooled: the call took a pre-booted sandbox from the pool.
	ServedPooled Served = "pooled"
	// ServedCold: the call waited for a sandbox to boot.
	ServedCold Served = "cold"
)

// CallInfo receives how one Manager.Invoke was served. Put it in the call's
// context with WithCallInfo; Invoke fills it before returning.
type CallInfo struct {
	Served    Served
	SandboxID string
	// Queued is the time spent waiting for a concurrency slot.
	Queued time.Duration
	// Duration is the time from Invoke's start to its return.
	Duration time.Duration
}

type callInfoKey struct{}

// WithCallInfo returns ctx carrying ci for Manager.Invoke to fill.
func WithCallInfo(ctx context.Context, ci *CallInfo) context.Context {
	return context.WithValue(ctx, callInfoKey{}, ci)
}

func callInfoFrom(ctx context.Context) *CallInfo {
	ci, _ := ctx.Value(callInfoKey{}).(*CallInfo)
	return ci
}

// Info describes a live sandbox (wtctl sandboxes).
type Info struct {
	ID          string    `json:"id"`
	Container   string    `json:"container"`
	Pid         int       `json:"pid"`
	State       State     `json:"state"`
	CreatedAt   time.Time `json:"created_at"`
	LastUsedAt  time.Time `json:"last_used_at"`
	Invocations uint64    `json:"invocations"`
	InFlight    int       `json:"in_flight"`
	MemoryBytes uint64    `json:"memory_bytes"`
	Limits      Limits    `json:"limits"`
	// Served is how the sandbox came to its container: pooled or cold.
	Served Served `json:"served,omitempty"`
	// Cgroup holds cgroup figures; filled by Manager.Inspect only.
	Cgroup *CgroupStats `json:"cgroup,omitempty"`
}

// CgroupStats are a sandbox's figures read from its cgroup.
type CgroupStats struct {
	Path             string `json:"path"`
	MemoryBytes      uint64 `json:"memory_bytes"`
	MemoryLimitBytes uint64 `json:"memory_limit_bytes"`
	MemoryMaxBytes   uint64 `json:"memory_max_bytes"`
	CPUNanos         uint64 `json:"cpu_usage_ns"`
	Pids             uint64 `json:"pids"`
	PidsLimit        uint64 `json:"pids_limit"`
	OOMKills         uint64 `json:"oom_kills"`
}

// Sandbox is one running sandbox: a libcontainer container whose init is
// the Node runtime agent. All methods are safe for concurrent use.
type Sandbox interface {
	// ID is unique among this daemon's sandboxes, past and present.
	ID() string
	// Invoke runs one invocation in the warm runtime. Several may run at
	// once. It never starts a process. After Destroy it returns ErrDestroyed.
	// timeout bounds the invocation (0: only ctx does); past it the error
	// wraps ErrTimeout (the invocation may still run in the runtime).
	Invoke(ctx context.Context, req *agent.Request, timeout time.Duration) (*agent.Response, error)
	// Pause freezes every process of the sandbox (cgroup freezer); Resume
	// thaws it. Both are no-ops in the state they move to.
	Pause() error
	Resume() error
	// Destroy kills the runtime and removes the container's state and
	// cgroups. It is idempotent; calls in flight fail with ErrDestroyed.
	Destroy() error
	// Done is closed once the runtime has exited for any reason.
	Done() <-chan struct{}
	// Info reports the sandbox's current state and figures.
	Info() Info
}
