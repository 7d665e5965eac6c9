// Package sandbox runs webtask code in Linux sandboxes built with
// libcontainer: one sandbox per webtask container, each a long-lived Node
// runtime agent that serves many invocations without starting a process.
package sandbox

import (
	"context"
	"errors"
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
)

// Limits are the resource limits of one sandbox.
type Limits struct {
	// MemoryMB is the cgroup memory limit in MiB; V8's heap limit follows it.
	MemoryMB int `json:"memory_mb"`
	// CPUs is the CPU quota in cores (1 = one full core).
	CPUs float64 `json:"cpus"`
	// Pids caps tasks (processes and threads) in the sandbox.
	Pids int `json:"pids"`
	// TmpMB is the size of the sandbox's tmpfs /tmp in MiB.
	TmpMB int `json:"tmp_mb"`
}

// DefaultLimits are the limits of a sandbox when nothing else is configured.
var DefaultLimits = Limits{MemoryMB: 256, CPUs: 1, Pids: 128, TmpMB: 16}

// State is the lifecycle state of a sandbox.
type State string

const (
	StateRunning   State = "running"
	StatePaused    State = "paused"
	StateDestroyed State = "destroyed"
)

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
}

// Sandbox is one running sandbox: a libcontainer container whose init is
// the Node runtime agent. All methods are safe for concurrent use.
type Sandbox interface {
	// ID is unique among this daemon's sandboxes, past and present.
	ID() string
	// Invoke runs one invocation in the warm runtime. Several may run at
	// once. It never starts a process. After Destroy it returns ErrDestroyed.
	Invoke(ctx context.Context, req *agent.Request) (*agent.Response, error)
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
