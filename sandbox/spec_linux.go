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
	"golang.org/x/sys/unix"

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
}

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
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Hard: 4096, Soft: 4096},
				{Type: "RLIMIT_CORE", Hard: 0, Soft: 0},
			},
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
				CPU:     &specs.LinuxCPU{Quota: &quota, Period: &period},
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
	return cfg, nil
}

// seccompProfile is a denylist: everything is allowed except syscalls a
// Node runtime never needs and that widen the kernel attack surface.
func seccompProfile() *specs.LinuxSeccomp {
	eperm := uint(unix.EPERM)
	enosys := uint(unix.ENOSYS)
	denied := []string{
		"mount", "umount2", "ptrace", "kexec_load", "kexec_file_load",
		"init_module", "finit_module", "delete_module", "bpf", "perf_event_open",
		"keyctl", "add_key", "request_key", "unshare", "setns", "swapon", "swapoff",
		"reboot", "acct", "pivot_root", "chroot", "open_by_handle_at", "name_to_handle_at",
		"userfaultfd", "process_vm_readv", "process_vm_writev", "fsopen", "fsmount",
		"fsconfig", "move_mount", "open_tree", "mount_setattr", "lookup_dcookie",
		"quotactl", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
		"syslog", "vhangup", "iopl", "ioperm", "kcmp",
	}
	sc := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64},
		Syscalls: []specs.LinuxSyscall{
			{Names: denied, Action: specs.ActErrno, ErrnoRet: &eperm},
			// clone3 passes its flags in memory seccomp cannot inspect; ENOSYS
			// makes libc fall back to clone, whose flags are checked below.
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys},
		},
	}
	for _, flag := range []uint64{
		unix.CLONE_NEWNS, unix.CLONE_NEWUTS, unix.CLONE_NEWIPC, unix.CLONE_NEWUSER,
		unix.CLONE_NEWPID, unix.CLONE_NEWNET, unix.CLONE_NEWCGROUP,
	} {
		sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{
			Names: []string{"clone"}, Action: specs.ActErrno, ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: flag, ValueTwo: flag, Op: specs.OpMaskedEqual}},
		})
	}
	// personality: refuse the persona bits that weaken the address space
	// (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ADDR_COMPAT_LAYOUT, MMAP_PAGE_ZERO).
	for _, bit := range []uint64{0x0040000, 0x0400000, 0x0200000, 0x0100000} {
		sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{
			Names: []string{"personality"}, Action: specs.ActErrno, ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: bit, ValueTwo: bit, Op: specs.OpMaskedEqual}},
		})
	}
	return sc
}
