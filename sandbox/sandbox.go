// Package sandbox runs webtask code in Linux sandboxes built with
// libcontainer: one sandbox per webtask container, each a long-lived Node
// runtime agent that serves many invocations without starting a process.
//
// In this package "container" always means a webtask container (the
// tenant scope); the libcontainer object behind a sandbox is its runtime.
// The Manager (manager.go, pool.go, reaper.go, admin.go, metrics.go)
// works only through the Sandbox interface; lcSandbox (host_linux.go,
// spec_linux.go, seccomp_linux.go, rlimits_linux.go, boot_linux.go,
// runtime_linux.go, freeze_linux.go, exit_linux.go) implements it with
// libcontainer, and cgroups_linux.go and
// sweep_linux.go are the package's own cgroup work.
package sandbox

import (
	"context"
	"log/slog"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// Sandbox is one running sandbox: an isolated runtime whose init is the
// Node runtime agent. All methods are safe for concurrent use.
type Sandbox interface {
	// ID is unique among this daemon's sandboxes, past and present.
	ID() string
	// Invoke runs one invocation in the warm runtime. Several may run at
	// once. It never starts a process. After Destroy it returns ErrDestroyed.
	// An error wrapping ErrNotReached means the request was never sent
	// (the runtime was already dead or destroyed).
	// timeout bounds the invocation (0: only ctx does); past it the error
	// wraps ErrTimeout (the invocation may still run in the runtime).
	// timeout and ctx bound the wait for the response head; a streamed
	// response (Response.Stream) is then the caller's to read and Close,
	// and counts as in flight until closed.
	Invoke(ctx context.Context, req *agent.Request, timeout time.Duration) (*agent.Response, error)
	// Assign gives a pooled sandbox (started with an empty
	// StartOptions.Container) to a webtask container and applies its CPU
	// and pids limits; the memory limit is fixed at boot and must match.
	// A sandbox is assigned at most once; a second Assign fails.
	Assign(container string, l types.Limits) error
	// Pause freezes every process of the sandbox (cgroup freezer); Resume
	// thaws it. Both are no-ops in the state they move to; after Destroy
	// they return ErrDestroyed. When the runtime died while frozen (it
	// dies only at the thaw), Resume returns an error wrapping the reason
	// (ErrCrashed, ErrOOM) and ErrNotReached, and so does every later
	// Resume.
	Pause() error
	Resume() error
	// Paused reports whether the sandbox is frozen by Pause (cheap: no I/O).
	Paused() bool
	// ThawExternal thaws the sandbox when it is frozen although Pause did
	// not freeze it (someone froze its cgroup from outside) and reports
	// whether it did. It reads the cgroup: the Manager calls it only for
	// calls slow to answer.
	ThawExternal() (bool, error)
	// Destroy kills the runtime and removes its state and cgroups. It is
	// idempotent; calls in flight fail with ErrDestroyed.
	Destroy() error
	// Done is closed once the runtime has exited for any reason.
	Done() <-chan struct{}
	// Err tells why the runtime exited (ErrDestroyed, ErrOOM or
	// ErrCrashed); valid once Done is closed.
	Err() error
	// Info reports the sandbox's current state and figures.
	Info() types.SandboxInfo
	// Stats reads the sandbox's cgroup figures.
	Stats() (*types.CgroupStats, error)
}

// StartOptions are what Config.NewSandbox needs to start one sandbox.
type StartOptions struct {
	// Container is the webtask container the sandbox serves; "" starts a
	// generic pooled sandbox, given to a container later by Assign.
	Container string
	// Limits are the resource limits of the sandbox (TmpMB included).
	Limits types.Limits
	// Logger receives the sandbox's logs.
	Logger *slog.Logger
	// OnLog receives user output with the container the sandbox serves at
	// that moment (output of a pooled sandbox is dropped); may be nil.
	OnLog func(container string, line agent.LogLine)
	// OnStorage serves storage calls (may be nil).
	OnStorage agent.StorageHandler
	// OnToken serves create_token calls (may be nil).
	OnToken agent.TokenHandler
}
