package modules

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"syscall"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// installCgroup bounds one npm run's memory and tasks. On a unified
// (cgroup v2) host npm starts inside it (clone3 CLONE_INTO_CGROUP); on a
// v1 host it is moved in right after it starts, before it can spawn
// anything of note. The zero value (no CgroupParent) does nothing.
type installCgroup struct {
	path string
	v1   cgroup1.Cgroup
	v2   *cgroup2.Manager
	fd   *os.File // v2: the cgroup directory, for CgroupFD
}

func (m *Manager) newInstallCgroup(spec interface{ String() string }) (*installCgroup, error) {
	if m.cfg.CgroupParent == "" {
		return &installCgroup{}, nil
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	c := &installCgroup{path: filepath.Join(m.cfg.CgroupParent, "install-"+hex.EncodeToString(b[:]))}
	mem, pids := m.cfg.InstallMemoryBytes, m.cfg.InstallPids
	if cgroups.Mode() == cgroups.Unified {
		mgr, err := cgroup2.NewManager("/sys/fs/cgroup", c.path, &cgroup2.Resources{
			Memory: &cgroup2.Memory{Max: &mem},
			Pids:   &cgroup2.Pids{Max: pids},
		})
		if err != nil {
			return nil, err
		}
		c.v2 = mgr
		fd, err := os.Open(filepath.Join("/sys/fs/cgroup", c.path))
		if err != nil {
			_ = mgr.Delete()
			return nil, err
		}
		c.fd = fd
		return c, nil
	}
	cg, err := cgroup1.New(cgroup1.StaticPath(c.path), &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &mem},
		Pids:   &specs.LinuxPids{Limit: &pids},
	}, cgroup1.WithHiearchy(v1MemoryAndPids))
	if err != nil {
		return nil, err
	}
	c.v1 = cg
	return c, nil
}

// v1Root is where a v1 host mounts its controllers.
const v1Root = "/sys/fs/cgroup"

// v1MemoryAndPids is the v1 hierarchy of an install cgroup: the memory
// and pids controllers only, at their conventional mount points (never
// /proc/self/mountinfo: libcontainer's re-exec may have moved the main
// thread to a private mount namespace).
func v1MemoryAndPids() ([]cgroup1.Subsystem, error) {
	return []cgroup1.Subsystem{cgroup1.NewMemory(v1Root), cgroup1.NewPids(v1Root)}, nil
}

// prepare makes a v2 cgroup npm's cgroup from its first instruction.
func (c *installCgroup) prepare(attr *syscall.SysProcAttr) {
	if c.fd != nil {
		attr.UseCgroupFD, attr.CgroupFD = true, int(c.fd.Fd())
	}
}

// add moves pid into a v1 cgroup.
func (c *installCgroup) add(pid int) error {
	if c.v1 == nil {
		return nil
	}
	return c.v1.AddProc(uint64(pid))
}

// kill kills every task in the cgroup.
func (c *installCgroup) kill() {
	switch {
	case c.v2 != nil:
		_ = c.v2.Kill()
	case c.v1 != nil:
		procs, _ := c.v1.Processes(cgroup1.Memory, true)
		for _, p := range procs {
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		}
	}
}

// oomKilled reports whether the memory limit killed a task.
func (c *installCgroup) oomKilled() bool {
	switch {
	case c.v2 != nil:
		st, err := c.v2.Stat()
		return err == nil && st.MemoryEvents != nil && st.MemoryEvents.OomKill > 0
	case c.v1 != nil:
		st, err := c.v1.Stat(cgroup1.IgnoreNotExist)
		return err == nil && st.MemoryOomControl != nil && st.MemoryOomControl.OomKill > 0
	}
	return false
}

// delete kills what is left and removes the cgroup.
func (c *installCgroup) delete() {
	c.kill()
	if c.fd != nil {
		_ = c.fd.Close()
	}
	switch {
	case c.v2 != nil:
		_ = c.v2.Delete()
	case c.v1 != nil:
		_ = c.v1.Delete()
	}
}

// removeCgroupParent removes the (empty) parent of the install cgroups;
// "" and a parent still in use are left alone.
func removeCgroupParent(path string) {
	if path == "" {
		return
	}
	if cgroups.Mode() == cgroups.Unified {
		_ = os.Remove(filepath.Join("/sys/fs/cgroup", path))
		return
	}
	for _, c := range []string{"memory", "pids"} {
		_ = os.Remove(filepath.Join(v1Root, c, path))
	}
}
