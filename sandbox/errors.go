package sandbox

import (
	"errors"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// Errors of sandboxes and the Manager. Each wraps one api/errdefs kind and
// its message is written for the API's caller; match them with errors.Is.
var (
	// ErrTimeout: the invocation ran past its exec timeout; the sandbox is
	// recycled.
	ErrTimeout = errdefs.New(errdefs.ErrDeadline, "webtask exceeded the execution time limit")
	// ErrResponseTooLarge: the response body passed the call's
	// MaxResponseBytes.
	ErrResponseTooLarge = errdefs.New(errdefs.ErrUpstream, "the webtask's response exceeds the response size limit")
	// ErrStreamTimeout: a streamed response stalled past the idle timeout
	// or ran past the stream timeout.
	ErrStreamTimeout = errdefs.New(errdefs.ErrDeadline, "the webtask's streamed response exceeded its time limit")
	// ErrOOM: the runtime was killed at the sandbox's memory limit (seen
	// through the cgroup, not guessed).
	ErrOOM = errdefs.New(errdefs.ErrFailed, "webtask exceeded the memory limit")
	// ErrCrashed: the runtime exited or crashed during the call.
	ErrCrashed = errdefs.New(errdefs.ErrFailed, "webtask runtime exited unexpectedly")
	// ErrStart: a sandbox could not be started.
	ErrStart = errdefs.New(errdefs.ErrUnavailable, "sandbox could not be started")
	// ErrDestroyed: the sandbox was destroyed (by Destroy, idle expiry,
	// eviction or an admin kill) before or while the call ran.
	ErrDestroyed = errdefs.New(errdefs.ErrUnavailable, "sandbox destroyed")
	// ErrClosed: the Manager was closed.
	ErrClosed = errdefs.New(errdefs.ErrUnavailable, "sandbox manager closed")
	// ErrCapacity: MaxSandboxes sandboxes run and none of them is idle
	// enough to be evicted.
	ErrCapacity = errdefs.New(errdefs.ErrUnavailable, "no sandbox capacity left; retry later")
	// ErrBusy: the container already runs its maximum of concurrent calls
	// and the call waited in the queue past the queue timeout.
	ErrBusy = errdefs.New(errdefs.ErrExhausted, "too many concurrent calls to this webtask container; retry later")
	// ErrNotFound: no live sandbox has that id.
	ErrNotFound = errdefs.New(errdefs.ErrNotFound, "sandbox not found")
	// ErrConfig: a sandbox configuration or a container's limits are
	// invalid.
	ErrConfig = errdefs.New(errdefs.ErrInvalid, "invalid sandbox configuration")
)

// ErrNotReached marks an error of Sandbox.Resume or Sandbox.Invoke that
// came before the call reached the runtime: the runtime was found dead (or
// dying: killed while frozen) before the request was sent, so no user code
// ran for it. It always comes wrapped with the reason (ErrCrashed, ErrOOM
// or ErrDestroyed), whose kind and message the caller sees. The Manager
// retries such a call once on a fresh sandbox.
var ErrNotReached = errors.New("the call did not reach the runtime")
