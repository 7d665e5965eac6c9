package types

import "time"

// Limits are the resource limits of one sandbox. The daemon has defaults
// (flags); a container may override any non-zero field (wtctl limits,
// ContainerLimits). A zero field is absent on the wire.
type Limits struct {
	// MemoryMB is the cgroup memory limit in MiB; V8's heap limit follows it.
	MemoryMB int `json:"memory_mb,omitempty"`
	// CPUs is the CPU quota in cores (1 = one full core).
	CPUs float64 `json:"cpus,omitempty"`
	// Pids caps tasks (processes and threads) in the sandbox.
	Pids int `json:"pids,omitempty"`
	// TmpMB is the size of the sandbox's tmpfs /tmp in MiB (daemon-wide:
	// not overridable per container).
	TmpMB int `json:"tmp_mb,omitempty"`
	// ExecTimeoutMS bounds one invocation in milliseconds; 0 means the
	// daemon's exec timeout.
	ExecTimeoutMS int64 `json:"exec_timeout_ms,omitempty"`
	// MaxConcurrency caps the calls running at once in the container's
	// sandbox; 0 means the daemon's.
	MaxConcurrency int `json:"max_concurrency,omitempty"`
	// MaxResponseBytes caps one response body in bytes (a streamed one
	// is cut off past it); 0 means the daemon's.
	MaxResponseBytes int64 `json:"max_response_bytes,omitempty"`
}

// Override returns l with every non-zero field of o applied (TmpMB is
// daemon-wide and never overridden).
func (l Limits) Override(o Limits) Limits {
	override(&l.MemoryMB, o.MemoryMB)
	override(&l.CPUs, o.CPUs)
	override(&l.Pids, o.Pids)
	override(&l.ExecTimeoutMS, o.ExecTimeoutMS)
	override(&l.MaxConcurrency, o.MaxConcurrency)
	override(&l.MaxResponseBytes, o.MaxResponseBytes)
	return l
}

// override sets *dst to v unless v is zero.
func override[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// ContainerLimits are one webtask container's limit overrides (GET and PUT
// /api/admin/containers/{c}/limits): a zero field inherits the daemon
// default; TmpMB is never overridden.
type ContainerLimits struct {
	Container string `json:"container,omitempty"`
	Limits
	// Quotas override the daemon's per-container quotas (zero fields
	// inherit them).
	Quotas Quotas `json:"quotas,omitzero"`
	// UpdatedAt is when the overrides were stored (zero: none are).
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// SandboxState is the lifecycle state of a sandbox.
type SandboxState string

const (
	// SandboxPooled: booted, never ran user code, waiting in the pool.
	SandboxPooled SandboxState = "pooled"
	// SandboxRunning: assigned to a container and thawed.
	SandboxRunning SandboxState = "running"
	// SandboxPaused: frozen (cgroup freezer) after a short idle period;
	// thawed by the next call.
	SandboxPaused SandboxState = "paused"
	// SandboxDestroyed: killed and removed.
	SandboxDestroyed SandboxState = "destroyed"
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

// SandboxInfo describes a live sandbox (wtctl sandboxes).
type SandboxInfo struct {
	ID          string       `json:"id"`
	Container   string       `json:"container"`
	Pid         int          `json:"pid"`
	State       SandboxState `json:"state"`
	CreatedAt   time.Time    `json:"created_at"`
	LastUsedAt  time.Time    `json:"last_used_at"`
	Invocations uint64       `json:"invocations"`
	InFlight    int          `json:"in_flight"`
	MemoryBytes uint64       `json:"memory_bytes"`
	Limits      Limits       `json:"limits"`
	// Served is how the sandbox came to its container: pooled or cold.
	Served Served `json:"served,omitempty"`
	// Cgroup holds cgroup figures; filled by inspect only.
	Cgroup *CgroupStats `json:"cgroup,omitempty"`
}

// CgroupStats are a sandbox's figures read from its cgroup (v1 or v2).
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

// FleetStats are the figures of the parent cgroup of all sandboxes.
type FleetStats struct {
	MemoryBytes       uint64 `json:"memory_bytes"`
	MemoryBudgetBytes int64  `json:"memory_budget_bytes"`
	CPUNanos          uint64 `json:"cpu_usage_ns"`
	Pids              uint64 `json:"pids"`
	OOMKills          uint64 `json:"oom_kills"`
}

// FleetStatus is the fleet's state (wtctl status, /metrics).
type FleetStatus struct {
	PoolTarget   int                  `json:"pool_target"`
	PoolReady    int                  `json:"pool_ready"`
	MaxSandboxes int                  `json:"max_sandboxes"`
	Sandboxes    map[SandboxState]int `json:"sandboxes"`
	Fleet        *FleetStats          `json:"fleet,omitempty"`
}

// Quotas bound what one container may store: its named webtasks, its cron
// jobs and the summed bytes of its storage documents. Zero is unlimited
// for the daemon's flags, and "inherit the daemon's" in a container's
// overrides. A write past a quota is refused (403) and stores nothing.
type Quotas struct {
	MaxWebtasks     int   `json:"max_webtasks,omitempty"`
	MaxCronJobs     int   `json:"max_cron_jobs,omitempty"`
	MaxStorageBytes int64 `json:"max_storage_bytes,omitempty"`
}
