package sandbox

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

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
		if err := sweepRuntime(root, id, log); err != nil {
			log.Warn("sweep: leftover sandbox", "id", id, "err", err)
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

// sweepRuntime kills and destroys one leftover libcontainer runtime.
func sweepRuntime(root, id string, log *slog.Logger) error {
	rt, err := libcontainer.Load(root, id)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	log.Info("sweep: killing leftover sandbox", "id", id)
	if err := rt.Signal(unix.SIGKILL); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
		log.Warn("sweep: kill", "id", id, "err", err)
	}
	deadline := time.Now().Add(sweepWait)
	for {
		st, err := rt.Status()
		if err != nil || st == libcontainer.Stopped {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sandbox %s still %s after %s", id, st, sweepWait)
		}
		time.Sleep(sweepPoll)
	}
	if err := rt.Destroy(); err != nil {
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

// CgroupChildren lists the child cgroups of parent (a path below each
// hierarchy's root) in every mounted cgroup hierarchy (each v1
// controller, the unified v2 mount), as absolute directory paths: what
// Sweep removes, and what tests look for as leftovers. A hierarchy
// without parent adds nothing.
func CgroupChildren(parent string) ([]string, error) {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, mp := range mounts {
		des, err := os.ReadDir(filepath.Join(mp, parent))
		if err != nil {
			continue
		}
		for _, de := range des {
			if de.IsDir() {
				out = append(out, filepath.Join(mp, parent, de.Name()))
			}
		}
	}
	return out, nil
}

// Purge is Sweep followed by the removal of the parent cgroup itself, in
// every hierarchy, and of stateDir: for a fleet that is gone for good (a
// test's daemon that was killed, an uninstall). Nothing of the parent may
// be in use: a running daemon's sandboxes are killed.
func Purge(stateDir, cgroupParent string, log *slog.Logger) error {
	err := Sweep(stateDir, cgroupParent, log)
	if err == nil {
		err = removeCgroup(cgroupParent)
	}
	return errors.Join(err, os.RemoveAll(stateDir))
}

// sweepCgroups empties and removes every child cgroup of parent, in every
// hierarchy (the cgroup2 mount of a hybrid host included): first every
// process below parent is killed, then each child is emptied and removed.
func sweepCgroups(parent string, log *slog.Logger) error {
	if h, err := loadCgroup(parent); err == nil {
		h.kill()
	}
	children, err := CgroupChildren(parent)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	leaves := map[string]bool{}
	for _, c := range children {
		leaves[filepath.Base(c)] = true
	}
	var errs []error
	for leaf := range leaves {
		path := filepath.Join(parent, leaf)
		log.Info("sweep: removing leftover cgroup", "path", path)
		if err := removeCgroup(path); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeCgroup kills every process of the cgroup at path (relative to each
// hierarchy's root), waits (bounded) until it is empty and removes it
// from every hierarchy. A cgroup that no longer exists is fine.
func removeCgroup(path string) error {
	h, err := loadCgroup(path)
	if err != nil {
		return nil // gone
	}
	h.kill()
	deadline := time.Now().Add(sweepWait)
	for {
		pids := h.pids()
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sweep: %s: processes %v survive SIGKILL", path, pids)
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(sweepPoll)
	}
	if err := h.delete(); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	return nil
}
