package sandbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/rootfs"
)

// Identity mapping of every sandbox's user namespace: in-sandbox ids
// 0..65535 are host ids 100000..165535. The runtime runs as SandboxUID.
const (
	userNSHostBase = 100000
	userNSSize     = 65536
	// SandboxUID and SandboxGID are the in-sandbox ids of the runtime (the
	// "webtask" user of the skeleton's /etc/passwd).
	SandboxUID = 1000
	SandboxGID = 1000
)

// SpecOptions are the per-sandbox inputs of the libcontainer configuration.
type SpecOptions struct {
	// ID is the libcontainer id, also the leaf cgroup name.
	ID string
	// CgroupParent is the absolute parent cgroup path ("/webtaskd").
	CgroupParent string
	// Layout is the rootfs skeleton.
	Layout *rootfs.Layout
	// Limits are the resource limits of the sandbox.
	Limits types.Limits
	// Rlimits are the process resource limits of the sandbox.
	Rlimits Rlimits
	// Background marks a boot ahead of demand (the pool): the sandbox gets
	// the lowest CPU weight (backgroundCPUShares) until it is assigned, so
	// that while it boots the CPUs go first to calls being served.
	Background bool
}

// CPU weights: a pooled sandbox boots at the lowest (cgroup v1 cpu.shares
// 2; libcontainer converts it to v2's cpu.weight), an assigned one runs at
// the kernel's default (v1 shares 1024, v2 weight 100).
const (
	backgroundCPUShares = 2
	backgroundCPUWeight = 1 // what libcontainer makes of backgroundCPUShares on v2
	defaultCPUShares    = 1024
	defaultCPUWeight    = 100
)

// specconvMu serialises specconv.CreateLibcontainerConfig, which writes
// package-level state (its user-namespace setup) without locking.
var specconvMu sync.Mutex

// cpuPeriodUS is the CFS period used for the CPU quota, in microseconds.
const cpuPeriodUS = 100000

// BuildConfig returns the libcontainer configuration of one sandbox (see the
// package documentation of the security model).
func BuildConfig(o SpecOptions) (*configs.Config, error) {
	if o.Layout == nil {
		return nil, errors.New("sandbox: no rootfs layout")
	}
	const noExec = "noexec"
	memBytes := int64(o.Limits.MemoryMB) << 20
	swap := memBytes
	quota := int64(o.Limits.CPUs * cpuPeriodUS)
	period := uint64(cpuPeriodUS)
	pids := int64(o.Limits.Pids)
	var shares *uint64
	if o.Background {
		lowest := uint64(backgroundCPUShares)
		shares = &lowest
	}

	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", noExec, "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=64k"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", noExec, "nodev", "mode=1777", "size=" + strconv.Itoa(o.Limits.TmpMB) + "m"}},
	}
	for _, b := range o.Layout.Binds {
		mounts = append(mounts, specs.Mount{
			Destination: b.Dest, Type: "bind", Source: b.Source,
			Options: []string{"bind", "ro", "nosuid", "nodev"},
		})
	}
	spec := &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: o.Layout.Dir, Readonly: true},
		Hostname: "webtask",
		Mounts:   mounts,
		Process: &specs.Process{
			User:            specs.User{UID: SandboxUID, GID: SandboxGID},
			Cwd:             "/tmp",
			NoNewPrivileges: true,
			Capabilities:    &specs.LinuxCapabilities{},
		},
		Linux: &specs.Linux{
			CgroupsPath: filepath.Join(o.CgroupParent, o.ID),
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: userNSHostBase, Size: userNSSize}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: userNSHostBase, Size: userNSSize}},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.MountNamespace},
				{Type: specs.PIDNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.NetworkNamespace},
				{Type: specs.UserNamespace},
			},
			MaskedPaths: []string{
				"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
				"/proc/scsi", "/proc/acpi", "/proc/latency_stats", "/proc/timer_stats",
			},
			ReadonlyPaths: []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"},
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				Memory:  &specs.LinuxMemory{Limit: &memBytes, Swap: &swap},
				CPU:     &specs.LinuxCPU{Quota: &quota, Period: &period, Shares: shares},
				Pids:    &specs.LinuxPids{Limit: &pids},
			},
			Seccomp: seccompProfile(),
		},
	}
	specconvMu.Lock()
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: o.ID, Spec: spec})
	if err == nil {
		// The device entries point at specconv's package-level defaults,
		// which it has just mutated: give this config its own copies.
		for i, d := range cfg.Devices {
			dc := *d
			cfg.Devices[i] = &dc
		}
	}
	specconvMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("sandbox: building config: %w", err)
	}
	// Explicitly no capabilities at all (nil would keep them).
	cfg.Capabilities = &configs.Capabilities{}
	cfg.NoNewPrivileges = true
	// No session keyring of its own: every sandbox's root maps to the
	// same host uid, whose kernel key quota (kernel.keys.maxkeys, 200 on
	// Debian) would otherwise cap the sandboxes of the whole host at 200.
	// The inherited keyring is out of reach: seccomp refuses keyctl,
	// add_key and request_key (TestSeccompRulesFire).
	cfg.NoNewKeyring = true
	// specconv ignores the spec's process rlimits: set them on the
	// config, which libcontainer applies (prlimit) to the init process
	// before it enters the user namespace; every process inherits them.
	cfg.Rlimits = o.Rlimits.configs(o.Limits.Pids)
	return cfg, nil
}
