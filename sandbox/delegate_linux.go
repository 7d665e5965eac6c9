package sandbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup2"
	"golang.org/x/sys/unix"
)

// Delegation on cgroup v2. systemd, for a unit with Delegate=yes, hands the
// service its own cgroup (/system.slice/webtaskd.service) and puts the
// daemon's process in it. The sandboxes' parent belongs below it
// (--cgroup-parent /system.slice/webtaskd.service/sandboxes), but v2's
// no-internal-processes rule forbids enabling controllers for the child
// cgroups of a cgroup that holds processes (EBUSY): the daemon must first
// move out of the top of its subtree into a leaf of its own.

// unifiedMountpoint is where the cgroup v2 hierarchy is mounted.
const unifiedMountpoint = "/sys/fs/cgroup"

// DaemonLeaf is the leaf cgroup, below the daemon's delegated cgroup, that
// the daemon's processes move to (LeaveDelegatedTop).
const DaemonLeaf = "supervisor"

// LeaveDelegatedTop moves the processes of this process's own v2 cgroup
// (not those below it) into its leaf DaemonLeaf when parent (the
// sandboxes' parent cgroup) lies below that cgroup, so that controllers
// can be enabled on the way down to parent. Nothing happens when parent
// lies elsewhere (the default /webtaskd, below the root, which is exempt
// from the rule) or the daemon already sits in a leaf beside it.
func LeaveDelegatedTop(parent string) error {
	own, err := cgroup2.NestedGroupPath("")
	if err != nil {
		return fmt.Errorf("own cgroup: %w", err)
	}
	if !below(parent, own) {
		return nil
	}
	top, err := cgroup2.Load(own)
	if err != nil {
		return err
	}
	pids, err := top.Procs(false)
	if err != nil || len(pids) == 0 {
		return err
	}
	leaf, err := cgroup2.NewManager(unifiedMountpoint, filepath.Join(own, DaemonLeaf), &cgroup2.Resources{})
	if err != nil {
		return fmt.Errorf("leaving the top of the delegated cgroup %s: %w", own, err)
	}
	for _, pid := range pids {
		// A process that exited meanwhile has left the cgroup too.
		if err := leaf.AddProc(pid); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("moving pid %d below %s: %w", pid, own, err)
		}
	}
	return nil
}

// below reports whether cgroup path lies strictly below cgroup dir, dir
// not being the root.
func below(path, dir string) bool {
	dir = filepath.Clean(dir)
	return dir != "/" && strings.HasPrefix(filepath.Clean(path), dir+"/")
}
