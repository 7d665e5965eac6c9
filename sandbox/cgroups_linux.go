package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/webtaskd/webtaskd/api/types"
	"golang.org/x/sys/unix"
)

// The fleet's cgroups are managed with containerd/cgroups/v3: cgroup1 on
// legacy and hybrid hosts (v1 controllers), cgroup2 on unified hosts. The
// parent cgroup holds every sandbox; its memory limit is the fleet's
// memory budget. libcontainer creates and removes the leaves.

// v1Hierarchy lists the v1 controllers this host mounts. containerd's
// default hierarchy finds the mount root through /proc/self/mountinfo,
// which shows the main thread's mount namespace: libcontainer's
// /proc/self/exe sealing may have moved that thread to a private one, so
// the root comes from this thread's view (moby/mountinfo reads
// /proc/thread-self).
func v1Hierarchy() ([]cgroup1.Subsystem, error) {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	root := ""
	for _, mp := range mounts {
		if filepath.Base(mp) == "memory" {
			root = filepath.Dir(mp)
		}
	}
	if root == "" {
		return nil, cgroup1.ErrMountPointNotExist
	}
	all := []cgroup1.Subsystem{
		cgroup1.NewNamed(root, "systemd"), cgroup1.NewFreezer(root), cgroup1.NewPids(root),
		cgroup1.NewCpuset(root), cgroup1.NewCpu(root), cgroup1.NewCpuacct(root),
		cgroup1.NewMemory(root), cgroup1.NewBlkio(root), cgroup1.NewDevices(root),
	}
	var out []cgroup1.Subsystem
	for _, s := range all {
		if p, ok := s.(interface{ Path(string) string }); ok {
			if _, err := os.Lstat(p.Path("/")); err == nil {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

var withV1Hierarchy = cgroup1.WithHierarchy(v1Hierarchy)

// unified reports whether the host runs the cgroup v2 unified hierarchy only.
func unified() bool { return cgroups.Mode() == cgroups.Unified }

// fleetCgroup is the parent cgroup of every sandbox.
type fleetCgroup struct {
	path   string
	budget int64 // bytes, 0 = none
	v1     cgroup1.Cgroup
	v2     *cgroup2.Manager
}

// openFleetCgroup creates (or adopts) the parent cgroup and applies the
// memory budget (0: no budget beyond the host).
func openFleetCgroup(path string, budgetBytes int64) (*fleetCgroup, error) {
	f := &fleetCgroup{path: path, budget: budgetBytes}
	if unified() {
		res := &cgroup2.Resources{}
		if budgetBytes > 0 {
			res.Memory = &cgroup2.Memory{Max: &budgetBytes}
		}
		m, err := cgroup2.NewManager("/sys/fs/cgroup", path, res)
		if err != nil {
			return nil, fmt.Errorf("sandbox: parent cgroup %s: %w", path, err)
		}
		f.v2 = m
		return f, nil
	}
	res := &specs.LinuxResources{}
	if budgetBytes > 0 {
		res.Memory = &specs.LinuxMemory{Limit: &budgetBytes}
	}
	cg, err := cgroup1.New(cgroup1.StaticPath(path), res, withV1Hierarchy)
	if err != nil {
		return nil, fmt.Errorf("sandbox: parent cgroup %s: %w", path, err)
	}
	f.v1 = cg
	return f, nil
}

func (f *fleetCgroup) stats() (types.FleetStats, error) {
	st := types.FleetStats{MemoryBudgetBytes: f.budget}
	if f.v2 != nil {
		m, err := f.v2.Stat()
		if err != nil {
			return st, err
		}
		if m.Memory != nil {
			st.MemoryBytes = m.Memory.Usage
		}
		if m.CPU != nil {
			st.CPUNanos = m.CPU.UsageUsec * 1000
		}
		if m.Pids != nil {
			st.Pids = m.Pids.Current
		}
		if m.MemoryEvents != nil {
			st.OOMKills = m.MemoryEvents.OomKill
		}
		return st, nil
	}
	m, err := f.v1.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return st, err
	}
	if m.Memory != nil && m.Memory.Usage != nil {
		st.MemoryBytes = m.Memory.Usage.Usage
	}
	if m.CPU != nil && m.CPU.Usage != nil {
		st.CPUNanos = m.CPU.Usage.Total
	}
	if m.Pids != nil {
		st.Pids = m.Pids.Current
	}
	if m.MemoryOomControl != nil {
		st.OOMKills = m.MemoryOomControl.OomKill
	}
	return st, nil
}

// delete removes the (empty) parent cgroup.
func (f *fleetCgroup) delete() error {
	if f.v2 != nil {
		if err := f.v2.Delete(); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sandbox: removing parent cgroup: %w", err)
		}
		return nil
	}
	if err := f.v1.Delete(); err != nil && !errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return fmt.Errorf("sandbox: removing parent cgroup: %w", err)
	}
	return nil
}

// killFleetOrphans SIGKILLs, through containerd/cgroups, every process
// left anywhere below the parent cgroup (a daemon killed with SIGKILL
// leaves its sandboxes running). Missing cgroups are fine.
func killFleetOrphans(path string) {
	if unified() {
		if m, err := cgroup2.Load(path); err == nil {
			_ = m.Kill()
		}
		return
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(path), withV1Hierarchy)
	if err != nil {
		return
	}
	// Frozen tasks ignore SIGKILL until thawed.
	_ = cg.Thaw()
	procs, err := cg.Processes(cgroup1.Pids, true)
	if err != nil {
		procs, _ = cg.Processes(cgroup1.Memory, true)
	}
	for _, p := range procs {
		if p.Pid > 0 {
			_ = unix.Kill(p.Pid, unix.SIGKILL)
		}
	}
}

// sandboxCgroupStats reads the figures of the sandbox cgroup at path.
func sandboxCgroupStats(path string) (*types.CgroupStats, error) {
	st := &types.CgroupStats{Path: path}
	if unified() {
		m, err := cgroup2.Load(path)
		if err != nil {
			return nil, err
		}
		s, err := m.Stat()
		if err != nil {
			return nil, err
		}
		if s.Memory != nil {
			st.MemoryBytes, st.MemoryLimitBytes, st.MemoryMaxBytes = s.Memory.Usage, s.Memory.UsageLimit, s.Memory.MaxUsage
		}
		if s.CPU != nil {
			st.CPUNanos = s.CPU.UsageUsec * 1000
		}
		if s.Pids != nil {
			st.Pids, st.PidsLimit = s.Pids.Current, s.Pids.Limit
		}
		if s.MemoryEvents != nil {
			st.OOMKills = s.MemoryEvents.OomKill
		}
		return st, nil
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(path), withV1Hierarchy)
	if err != nil {
		return nil, err
	}
	s, err := cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return nil, err
	}
	if s.Memory != nil && s.Memory.Usage != nil {
		st.MemoryBytes, st.MemoryLimitBytes, st.MemoryMaxBytes = s.Memory.Usage.Usage, s.Memory.Usage.Limit, s.Memory.Usage.Max
	}
	if s.CPU != nil && s.CPU.Usage != nil {
		st.CPUNanos = s.CPU.Usage.Total
	}
	if s.Pids != nil {
		st.Pids, st.PidsLimit = s.Pids.Current, s.Pids.Limit
	}
	if s.MemoryOomControl != nil {
		st.OOMKills = s.MemoryOomControl.OomKill
	}
	return st, nil
}

// updateSandboxCgroup applies the CPU quota and pids limit of l to the
// sandbox cgroup at path (memory is fixed at boot: V8's heap limit follows
// it and cannot change in a running runtime).
func updateSandboxCgroup(path string, l types.Limits) error {
	quota := int64(l.CPUs * cpuPeriodUS)
	period := uint64(cpuPeriodUS)
	pids := int64(l.Pids)
	if unified() {
		m, err := cgroup2.Load(path)
		if err != nil {
			return err
		}
		return m.Update(&cgroup2.Resources{
			CPU:  &cgroup2.CPU{Max: cgroup2.NewCPUMax(&quota, &period)},
			Pids: &cgroup2.Pids{Max: pids},
		})
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(path), withV1Hierarchy)
	if err != nil {
		return err
	}
	return cg.Update(&specs.LinuxResources{
		CPU:  &specs.LinuxCPU{Quota: &quota, Period: &period},
		Pids: &specs.LinuxPids{Limit: &pids},
	})
}

// sandboxCgroupPath is the cgroup path of sandbox id below parent.
func sandboxCgroupPath(parent, id string) string { return filepath.Join(parent, id) }
