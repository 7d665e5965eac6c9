package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// sweepWait bounds how long Sweep waits for one leftover to stop or one
// cgroup to empty.
const sweepWait = 10 * time.Second

// sweepPoll is the polling interval while waiting for leftovers to die.
const sweepPoll = 10 * time.Millisecond

// Sweep removes what a previous daemon left behind (a daemon killed with
// SIGKILL leaves its sandboxes running): every libcontainer state under
// stateDir/containers is loaded, SIGKILLed, waited for (bounded) and
// destroyed; then every cgroup under cgroupParent, in every hierarchy, is
// emptied (its processes SIGKILLed) and removed, and stray state dirs are
// deleted. The parent cgroup itself is kept.
func Sweep(stateDir, cgroupParent string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	if !filepath.IsAbs(cgroupParent) || filepath.Clean(cgroupParent) == "/" {
		return fmt.Errorf("%w: cgroup parent must be an absolute path other than /: %q", ErrConfig, cgroupParent)
	}
	var errs []error
	root := filepath.Join(stateDir, "containers")
	entries, err := os.ReadDir(root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sweep: %w", err)
	}
	for _, de := range entries {
		if !de.IsDir() {
			continue
		}
		id := de.Name()
		if err := sweepContainer(root, id, log); err != nil {
			log.Warn("sweep: leftover container", "id", id, "err", err)
		}
		// Whatever Destroy managed, no state dir may remain.
		if err := os.RemoveAll(filepath.Join(root, id)); err != nil {
			errs = append(errs, fmt.Errorf("sweep: removing state of %s: %w", id, err))
		}
	}
	if err := sweepCgroups(cgroupParent, log); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sweepContainer kills and destroys one leftover libcontainer container.
func sweepContainer(root, id string, log *slog.Logger) error {
	c, err := libcontainer.Load(root, id)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	log.Info("sweep: killing leftover sandbox", "id", id)
	if err := c.Signal(unix.SIGKILL); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
		log.Warn("sweep: kill", "id", id, "err", err)
	}
	deadline := time.Now().Add(sweepWait)
	for {
		st, err := c.Status()
		if err != nil || st == libcontainer.Stopped {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("container %s still %s after %s", id, st, sweepWait)
		}
		time.Sleep(sweepPoll)
	}
	if err := c.Destroy(); err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	return nil
}

// cgroupMounts returns the mount points of every cgroup (v1) and cgroup2
// filesystem of this host.
func cgroupMounts() ([]string, error) {
	ms, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, fmt.Errorf("reading mounts: %w", err)
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Mountpoint)
	}
	return out, nil
}

// sweepCgroups empties and removes every child cgroup of parent: first
// every process below parent is killed through containerd/cgroups, then
// each child is emptied and removed from every hierarchy (the unified
// mount of a hybrid host included, which containerd's cgroup1 skips).
func sweepCgroups(parent string, log *slog.Logger) error {
	killFleetOrphans(parent)
	mounts, err := cgroupMounts()
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	leaves := map[string]bool{}
	for _, mp := range mounts {
		des, err := os.ReadDir(filepath.Join(mp, parent))
		if err != nil {
			continue
		}
		for _, de := range des {
			if de.IsDir() {
				leaves[de.Name()] = true
			}
		}
	}
	var errs []error
	for leaf := range leaves {
		path := filepath.Join(parent, leaf)
		log.Info("sweep: removing leftover cgroup", "path", path)
		if err := removeCgroup(path, mounts); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeCgroup kills every process of the cgroup at path (relative to each
// hierarchy's root) and removes it from every hierarchy, deepest first.
//
// containerd/cgroups' root package tells the host's mode; its cgroup1 and
// cgroup2 managers are not used because they pull protobuf and
// containerd/log into the module graph for two file writes and an rmdir.
func removeCgroup(path string, mounts []string) error {
	if cgroups.Mode() == cgroups.Unified {
		// cgroup.kill (Linux 5.14+) kills the whole subtree atomically.
		for _, mp := range mounts {
			if kf := filepath.Join(mp, path, "cgroup.kill"); fileExists(kf) {
				_ = os.WriteFile(kf, []byte("1"), 0)
			}
		}
	}
	killAll(path, mounts)
	if err := waitEmpty(path, mounts); err != nil {
		return fmt.Errorf("sweep: %s: %w", path, err)
	}
	var errs []error
	for _, mp := range mounts {
		if err := rmdirCgroup(filepath.Join(mp, path)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("sweep: %s: %w", path, errors.Join(errs...))
	}
	return nil
}

// rmdirCgroup removes a cgroup directory and any child cgroups, deepest
// first; a missing directory is fine.
func rmdirCgroup(dir string) error {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, de := range des {
		if de.IsDir() {
			if err := rmdirCgroup(filepath.Join(dir, de.Name())); err != nil {
				return err
			}
		}
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("rmdir %s: %w", dir, err)
	}
	return nil
}

// cgroupPids lists the processes of the cgroup at path in every hierarchy.
func cgroupPids(path string, mounts []string) []int {
	seen := map[int]bool{}
	for _, mp := range mounts {
		f, err := os.Open(filepath.Join(mp, path, "cgroup.procs"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if pid, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil && pid > 0 {
				seen[pid] = true
			}
		}
		f.Close()
	}
	out := make([]int, 0, len(seen))
	for pid := range seen {
		out = append(out, pid)
	}
	return out
}

// killAll thaws the v1 freezer (frozen tasks ignore SIGKILL) and SIGKILLs
// every process of the cgroup.
func killAll(path string, mounts []string) {
	for _, mp := range mounts {
		st := filepath.Join(mp, path, "freezer.state")
		if _, err := os.Stat(st); err == nil {
			_ = os.WriteFile(st, []byte("THAWED"), 0)
		}
		if cf := filepath.Join(mp, path, "cgroup.freeze"); fileExists(cf) {
			_ = os.WriteFile(cf, []byte("0"), 0)
		}
	}
	for _, pid := range cgroupPids(path, mounts) {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// waitEmpty polls until the cgroup has no process left (bounded).
func waitEmpty(path string, mounts []string) error {
	deadline := time.Now().Add(sweepWait)
	for {
		pids := cgroupPids(path, mounts)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v survive SIGKILL", pids)
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(sweepPoll)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// removeCgroupParent removes the (empty) parent cgroup from every hierarchy,
// sweeping any child left behind first.
func removeCgroupParent(parent string, log *slog.Logger) error {
	if err := sweepCgroups(parent, log); err != nil {
		return err
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	var errs []error
	for _, mp := range mounts {
		if err := rmdirCgroup(filepath.Join(mp, parent)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
