package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/webtaskd/webtaskd/api/types"
)

// Every cgroup read and write of this package goes through
// containerd/cgroups/v3: cgroup1 for the v1 controllers of legacy and
// hybrid hosts, cgroup2 for unified hosts and for the cgroup2 mount of a
// hybrid host (where libcontainer also creates each sandbox's cgroup).
// libcontainer creates, freezes and removes the sandboxes' own cgroups;
// this package manages the parent (the fleet: its memory budget, stats
// and removal), reads the sandboxes' figures and OOM kills, applies the
// limits of an assigned pooled sandbox and sweeps leftovers.

// hybridUnifiedMount is the cgroup2 mount of a hybrid host.
const hybridUnifiedMount = "/sys/fs/cgroup/unified"

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
		cgroup1.NewNetCls(root), cgroup1.NewNetPrio(root), cgroup1.NewPerfEvent(root), cgroup1.NewRdma(root),
	}
	if h, err := cgroup1.NewHugetlb(root); err == nil {
		all = append(all, h)
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

// v1Dir is the directory of the cgroup at path in the v1 hierarchy of the
// controller name ("" when cg has no such controller).
func v1Dir(cg cgroup1.Cgroup, name cgroup1.Name, path string) string {
	for _, s := range cg.Subsystems() {
		if p, ok := s.(interface{ Path(string) string }); ok && s.Name() == name {
			return p.Path(path)
		}
	}
	return ""
}

// unified reports whether the host runs the cgroup v2 unified hierarchy only.
func unified() bool { return cgroups.Mode() == cgroups.Unified }

// cgroupHandle is one cgroup path in every hierarchy of the host.
type cgroupHandle struct {
	path string
	v1   cgroup1.Cgroup   // legacy and hybrid hosts
	v2   *cgroup2.Manager // unified hosts, or the cgroup2 mount of a hybrid host
}

// loadCgroup opens the existing cgroup at path (relative to each
// hierarchy's root); it fails when no hierarchy has it.
func loadCgroup(path string) (*cgroupHandle, error) {
	h := &cgroupHandle{path: path}
	if unified() {
		// cgroup2.Load does not look: without this check a missing cgroup
		// loads, and kill() logs its failed freeze, thaw and kill.
		if _, err := os.Stat(filepath.Join(unifiedMountpoint, path)); err != nil {
			return nil, err
		}
		m, err := cgroup2.Load(path)
		if err != nil {
			return nil, err
		}
		h.v2 = m
		return h, nil
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(path), withV1Hierarchy)
	if err != nil {
		return nil, err
	}
	h.v1 = cg
	if cgroups.Mode() == cgroups.Hybrid {
		if _, err := os.Stat(filepath.Join(hybridUnifiedMount, path)); err == nil {
			h.v2, _ = cgroup2.Load(path, cgroup2.WithMountpoint(hybridUnifiedMount))
		}
	}
	return h, nil
}

// pids lists the processes anywhere below the cgroup.
func (h *cgroupHandle) pids() []int {
	seen := map[int]bool{}
	if h.v1 != nil {
		for _, sub := range []cgroup1.Name{cgroup1.Pids, cgroup1.Memory, cgroup1.Freezer} {
			procs, err := h.v1.Processes(sub, true)
			if err != nil {
				continue
			}
			for _, p := range procs {
				seen[p.Pid] = true
			}
		}
	}
	if h.v2 != nil {
		procs, _ := h.v2.Procs(true)
		for _, p := range procs {
			seen[int(p)] = true
		}
	}
	out := make([]int, 0, len(seen))
	for pid := range seen {
		if pid > 0 {
			out = append(out, pid)
		}
	}
	return out
}

// kill thaws the cgroup (frozen tasks ignore SIGKILL) and SIGKILLs every
// process below it.
func (h *cgroupHandle) kill() {
	if h.v1 != nil {
		_ = h.v1.Thaw()
	}
	if h.v2 != nil {
		_ = h.v2.Thaw()
		if unified() {
			_ = h.v2.Kill() // cgroup.kill: the whole subtree at once
		}
	}
	for _, pid := range h.pids() {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// delete removes the (empty) cgroup from every hierarchy.
func (h *cgroupHandle) delete() error {
	var errs []error
	if h.v1 != nil {
		if err := h.v1.Delete(); err != nil && !errors.Is(err, cgroup1.ErrCgroupDeleted) {
			errs = append(errs, err)
		}
	}
	if h.v2 != nil {
		if err := h.v2.Delete(); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("removing cgroup %s: %w", h.path, errors.Join(errs...))
	}
	return nil
}

// fleetCgroup is the parent cgroup of every sandbox.
type fleetCgroup struct {
	*cgroupHandle
	budget int64 // bytes, 0 = none
}

// openFleetCgroup creates (or adopts) the parent cgroup and applies the
// memory budget (0: no budget beyond the host).
func openFleetCgroup(path string, budgetBytes int64) (*fleetCgroup, error) {
	f := &fleetCgroup{cgroupHandle: &cgroupHandle{path: path}, budget: budgetBytes}
	if unified() {
		res := &cgroup2.Resources{}
		if budgetBytes > 0 {
			res.Memory = &cgroup2.Memory{Max: &budgetBytes}
		}
		if err := LeaveDelegatedTop(path); err != nil {
			return nil, fmt.Errorf("sandbox: parent cgroup %s: %w", path, err)
		}
		m, err := cgroup2.NewManager(unifiedMountpoint, path, res)
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

// presetBackground creates the CPU cgroup of sandbox id at the lowest
// weight (v1 cpu.shares 2, v2 cpu.weight 1) before its init joins it:
// libcontainer writes a sandbox's resources only when its init reports
// ready, so without this the init's own work (namespaces, mounts, the
// seccomp filter: about a fifth of a boot's CPU) ran at the default
// weight, beside the calls being served. libcontainer adopts the cgroup
// and removes it with the sandbox; undo removes it when no sandbox was
// created.
func (f *fleetCgroup) presetBackground(id string) (undo func(), err error) {
	path := sandboxCgroupPath(f.path, id)
	if f.v1 == nil {
		// The manager enables the cpu controller down to the parent, as
		// libcontainer does (the first sandbox of a parent comes before it).
		w := uint64(backgroundCPUWeight)
		m, err := cgroup2.NewManager(unifiedMountpoint, path, &cgroup2.Resources{CPU: &cgroup2.CPU{Weight: &w}})
		if err != nil {
			return nil, err
		}
		return func() { _ = m.Delete() }, nil
	}
	dir := v1Dir(f.v1, cgroup1.Cpu, path)
	if dir == "" {
		return nil, errors.New("no cpu controller")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	undo = func() { _ = os.Remove(dir) }
	if err := os.WriteFile(filepath.Join(dir, "cpu.shares"), []byte(strconv.Itoa(backgroundCPUShares)), 0); err != nil {
		undo()
		return nil, err
	}
	return undo, nil
}

// delete removes the parent cgroup from every hierarchy, the cgroup2 mount
// of a hybrid host included (libcontainer's leaves create it there).
func (f *fleetCgroup) delete() error {
	if f.v1 != nil && cgroups.Mode() == cgroups.Hybrid && f.v2 == nil {
		if _, err := os.Stat(filepath.Join(hybridUnifiedMount, f.path)); err == nil {
			f.v2, _ = cgroup2.Load(f.path, cgroup2.WithMountpoint(hybridUnifiedMount))
		}
	}
	if err := f.cgroupHandle.delete(); err != nil {
		return fmt.Errorf("sandbox: removing parent cgroup: %w", err)
	}
	return nil
}

func (f *fleetCgroup) stats() (types.FleetStats, error) {
	st := types.FleetStats{MemoryBudgetBytes: f.budget}
	cs, err := f.cgroupHandle.stats()
	if err != nil {
		return st, err
	}
	st.MemoryBytes, st.CPUNanos, st.Pids, st.OOMKills = cs.MemoryBytes, cs.CPUNanos, cs.Pids, cs.OOMKills
	return st, nil
}

// workingSet is the fleet's memory the kernel could not reclaim by itself:
// usage minus inactive page cache.
func (f *fleetCgroup) workingSet() (uint64, error) {
	var usage, inactive uint64
	if f.v1 != nil {
		s, err := f.v1.Stat(cgroup1.IgnoreNotExist)
		if err != nil {
			return 0, err
		}
		if s.Memory == nil || s.Memory.Usage == nil {
			return 0, errors.New("no memory controller")
		}
		usage, inactive = s.Memory.Usage.Usage, s.Memory.TotalInactiveFile
	} else {
		s, err := f.v2.Stat()
		if err != nil {
			return 0, err
		}
		if s.Memory == nil {
			return 0, errors.New("no memory controller")
		}
		usage, inactive = s.Memory.Usage, s.Memory.InactiveFile
	}
	return usage - min(usage, inactive), nil
}

// sandboxCgroup is one sandbox's own cgroup (libcontainer creates and
// removes it).
type sandboxCgroup struct {
	*cgroupHandle
	mem1 interface { // the v1 memory controller, to read memory alone
		Stat(path string, m *v1stats.Metrics) error
	}
	// weightFile is the sandbox's CPU weight file (v1 cpu.shares, v2
	// cpu.weight), written alone on a pooled sandbox's way to its first
	// call: a controller-wide Update also rewrites every v1 controller
	// (cpuset copies its parents' cpus and mems), a dozen file reads.
	weightFile string
}

func loadSandboxCgroup(path string) (*sandboxCgroup, error) {
	h, err := loadCgroup(path)
	if err != nil {
		return nil, err
	}
	c := &sandboxCgroup{cgroupHandle: h}
	if h.v1 == nil {
		c.weightFile = filepath.Join(unifiedMountpoint, path, "cpu.weight")
		return c, nil
	}
	if dir := v1Dir(h.v1, cgroup1.Memory, "/"); dir != "" {
		// Usage and OOM kills only: swap and kernel memory files may be
		// missing (swap accounting off, newer kernels).
		root := filepath.Dir(filepath.Clean(dir))
		c.mem1 = cgroup1.NewMemory(root, cgroup1.IgnoreModules("memsw", "kmem", "kmem.tcp"))
	}
	dir := v1Dir(h.v1, cgroup1.Cpu, path)
	if dir == "" {
		return nil, fmt.Errorf("cgroup %s: no cpu controller", path)
	}
	c.weightFile = filepath.Join(dir, "cpu.shares")
	return c, nil
}

// memory reads the memory controller only: usage and OOM kills.
func (c *sandboxCgroup) memory() (usage, oomKills uint64, err error) {
	if c.v1 != nil {
		if c.mem1 == nil {
			return 0, 0, errors.New("no memory controller")
		}
		var m v1stats.Metrics
		if err := c.mem1.Stat(c.path, &m); err != nil {
			return 0, 0, err
		}
		if m.Memory != nil && m.Memory.Usage != nil {
			usage = m.Memory.Usage.Usage
		}
		if m.MemoryOomControl != nil {
			oomKills = m.MemoryOomControl.OomKill
		}
		return usage, oomKills, nil
	}
	m, err := c.v2.StatFiltered(cgroup2.StatMemory | cgroup2.StatMemoryEvents)
	if err != nil {
		return 0, 0, err
	}
	if m.Memory != nil {
		usage = m.Memory.Usage
	}
	if m.MemoryEvents != nil {
		oomKills = m.MemoryEvents.OomKill
	}
	return usage, oomKills, nil
}

func (c *sandboxCgroup) memoryUsage() (uint64, error) {
	u, _, err := c.memory()
	return u, err
}

func (c *sandboxCgroup) oomKills() (uint64, error) {
	_, n, err := c.memory()
	return n, err
}

// stats reads every figure of the cgroup.
func (h *cgroupHandle) stats() (*types.CgroupStats, error) {
	st := &types.CgroupStats{Path: h.path}
	if h.v1 != nil {
		s, err := h.v1.Stat(cgroup1.IgnoreNotExist)
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
	s, err := h.v2.Stat()
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

// foreground gives a pooled sandbox the kernel's default CPU weight
// (cgroup v1 cpu.shares 1024, v2 cpu.weight 100) when it is assigned.
func (c *sandboxCgroup) foreground() error {
	w := defaultCPUWeight
	if c.v1 != nil {
		w = defaultCPUShares
	}
	return os.WriteFile(c.weightFile, []byte(strconv.Itoa(w)), 0)
}

// update applies the CPU quota and pids limit of l to the sandbox cgroup
// (memory is fixed at boot: V8's heap limit follows it and cannot change
// in a running runtime).
func (c *sandboxCgroup) update(l types.Limits) error {
	quota := int64(l.CPUs * cpuPeriodUS)
	period := uint64(cpuPeriodUS)
	pids := int64(l.Pids)
	if c.v1 != nil {
		return c.v1.Update(&specs.LinuxResources{
			CPU:  &specs.LinuxCPU{Quota: &quota, Period: &period},
			Pids: &specs.LinuxPids{Limit: &pids},
		})
	}
	return c.v2.Update(&cgroup2.Resources{
		CPU:  &cgroup2.CPU{Max: cgroup2.NewCPUMax(&quota, &period)},
		Pids: &cgroup2.Pids{Max: pids},
	})
}

// sandboxCgroupPath is the cgroup path of sandbox id below parent.
func sandboxCgroupPath(parent, id string) string { return filepath.Join(parent, id) }
