// Package sandbox runs webtask code in Linux sandboxes built with
// libcontainer: one sandbox per webtask container, each a long-lived Node
// runtime agent that serves many invocations without starting a process.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
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

// DefaultLimits are the limits of a sandbox when nothing else is configured.
var DefaultLimits = types.Limits{MemoryMB: 256, CPUs: 1, Pids: 128, TmpMB: 16}

// ValidateOverride checks per-container overrides (zero fields inherit the
// daemon defaults). Errors wrap ErrConfig.
func ValidateOverride(o types.Limits) error {
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

// CallInfo receives how one Manager.Invoke was served. Put it in the call's
// context with WithCallInfo; Invoke fills it before returning.
type CallInfo struct {
	Served    types.Served
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
	// SandboxInfo reports the sandbox's current state and figures.
	Info() types.SandboxInfo
}
