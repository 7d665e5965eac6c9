package sandbox_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox"
)

// unifiedHost reports whether only the cgroup v2 hierarchy is mounted.
func unifiedHost() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}

// cgroupValue reads one cgroup file (v1 in controller's hierarchy, else v2)
// without its trailing newline.
func cgroupValue(t *testing.T, controller, path, file string) string {
	t.Helper()
	return strings.TrimSpace(string(readCgroupFile(t, controller, path, file)))
}

// TestCgroupLimitsApplied checks the kernel's view of every limit, on v1
// and v2: a sandbox's memory (no swap beyond it), CPU quota and pids cap as
// booted, the CPU and pids limits a pooled sandbox gets when assigned to a
// container with its own, the parent's memory budget; and that Inspect and
// Status report the same figures.
func TestCgroupLimitsApplied(t *testing.T) {
	env := newEnv(t)
	v2 := unifiedHost()
	boot := types.Limits{MemoryMB: 96, CPUs: 0.5, Pids: 50, TmpMB: 8}
	tuned := types.Limits{CPUs: 0.25, Pids: 30}
	const budget = 512 << 20
	m := newManager(t, env, func(c *sandbox.Config) {
		c.Limits = boot
		c.PoolSize = 1
		c.MemoryBudgetBytes = budget
		c.LimitsFor = func(container string) (types.Limits, error) {
			if container == "tuned" {
				return tuned, nil
			}
			return types.Limits{}, nil
		}
	})
	eventually(t, 30*time.Second, "pool filled", func() bool { return m.Status().PoolReady == 1 })
	// A pooled sandbox boots at the lowest CPU weight, and gets the
	// default one when assigned.
	weightFile, lowest, normal := "cpu.shares", "2", "1024"
	if v2 {
		weightFile, lowest, normal = "cpu.weight", "1", "100"
	}
	ids := map[string]bool{} // the pooled sandbox's cgroup, in every hierarchy
	for _, p := range cgroupChildren(t, env.CgroupParent) {
		ids[filepath.Base(p)] = true
	}
	if len(ids) != 1 {
		t.Fatalf("sandbox cgroups before any call: %v, want the pooled one", ids)
	}
	var pooled string
	for id := range ids {
		pooled = id
	}
	if w := cgroupValue(t, "cpu", filepath.Join(env.CgroupParent, pooled), weightFile); w != lowest {
		t.Errorf("pooled sandbox: %s %s, want %s", weightFile, w, lowest)
	}
	mustRun(t, m, "tuned", helloCode, nil) // served by the pooled sandbox, limits updated
	mustRun(t, m, "plain", helloCode, nil)

	for container, want := range map[string]types.Limits{"plain": boot, "tuned": boot.Override(tuned)} {
		sb := m.SandboxOf(container)
		path := filepath.Join(env.CgroupParent, sb.ID())
		memFile := "memory.limit_in_bytes"
		if v2 {
			memFile = "memory.max"
		}
		mem := cgroupValue(t, "memory", path, memFile)
		if mem != strconv.Itoa(want.MemoryMB<<20) {
			t.Errorf("%s: memory limit %s, want %d MiB", container, mem, want.MemoryMB)
		}
		quota := strconv.Itoa(int(want.CPUs * 100000))
		if v2 {
			if swap := cgroupValue(t, "memory", path, "memory.swap.max"); swap != "0" {
				t.Errorf("%s: memory.swap.max %s, want 0 (no swap beyond the memory limit)", container, swap)
			}
			if cpu := cgroupValue(t, "cpu", path, "cpu.max"); cpu != quota+" 100000" {
				t.Errorf("%s: cpu.max %q, want %q", container, cpu, quota+" 100000")
			}
		} else if cpu := cgroupValue(t, "cpu", path, "cpu.cfs_quota_us"); cpu != quota {
			t.Errorf("%s: cpu.cfs_quota_us %s, want %s", container, cpu, quota)
		}
		if w := cgroupValue(t, "cpu", path, weightFile); w != normal {
			t.Errorf("%s: %s %s, want %s", container, weightFile, w, normal)
		}
		pids := cgroupValue(t, "pids", path, "pids.max")
		if pids != strconv.Itoa(want.Pids) {
			t.Errorf("%s: pids.max %s, want %d", container, pids, want.Pids)
		}

		info, err := m.Inspect(sb.ID())
		if err != nil {
			t.Fatalf("Inspect %s: %v", container, err)
		}
		cg := info.Cgroup
		if cg == nil || cg.MemoryLimitBytes != uint64(want.MemoryMB)<<20 || cg.PidsLimit != uint64(want.Pids) ||
			cg.MemoryBytes == 0 || cg.CPUNanos == 0 || cg.Pids == 0 || cg.Pids > uint64(want.Pids) {
			t.Errorf("%s: Inspect cgroup figures %+v, want limits %d MiB / %d pids and non-zero usage", container, cg, want.MemoryMB, want.Pids)
		}
	}

	parentMemFile := "memory.limit_in_bytes"
	if v2 {
		parentMemFile = "memory.max"
	}
	parentMem := cgroupValue(t, "memory", env.CgroupParent, parentMemFile)
	if parentMem != strconv.Itoa(budget) {
		t.Errorf("parent memory limit %s, want the budget %d", parentMem, budget)
	}
	st := m.Status()
	if st.Fleet == nil || st.Fleet.MemoryBudgetBytes != budget || st.Fleet.MemoryBytes == 0 || st.Fleet.Pids == 0 {
		t.Errorf("fleet figures %+v, want the budget and non-zero usage", st.Fleet)
	}
}
