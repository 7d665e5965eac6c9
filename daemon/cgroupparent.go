package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/webtaskd/webtaskd/sandbox"
)

// The cgroups of a delegated service subtree (systemd Delegate=yes on
// cgroup v2): cgroup v2 lets a cgroup that enables controllers for its
// children hold no process itself, so the daemon moves into sandbox.DaemonLeaf
// and its sandboxes go under sandboxesCgroup, both in the service's cgroup.
const (
	sandboxesCgroup = "sandboxes"
	cgroup2Mount    = "/sys/fs/cgroup"
)

// resolveCgroupParent returns the cgroup parent of the sandboxes when
// --cgroup-parent is empty ("auto"): inside the service's own subtree when
// systemd delegated it (the daemon moves itself to its supervisor leaf
// first), else sandbox.DefaultCgroupParent.
func resolveCgroupParent(log *slog.Logger) (string, error) {
	own, ok, why := delegatedCgroup()
	if !ok {
		log.Debug("sandbox cgroup parent: default", "parent", sandbox.DefaultCgroupParent, "why", why)
		return sandbox.DefaultCgroupParent, nil
	}
	parent := path.Join(own, sandboxesCgroup)
	// Before anything creates a cgroup below the service's (the module
	// installer's comes before the sandbox manager's).
	if err := sandbox.LeaveDelegatedTop(parent); err != nil {
		return "", err
	}
	leaf := path.Join(own, sandbox.DaemonLeaf)
	log.Info("sandbox cgroup parent: inside the service's delegated cgroup", "parent", parent, "daemon_cgroup", leaf)
	return parent, nil
}

// delegatedCgroup returns the daemon's cgroup when it is a systemd
// service's delegated cgroup v2 subtree (or the supervisor leaf of one,
// after a restart of the daemon in place), or why not.
func delegatedCgroup() (cgroup string, ok bool, why string) {
	if os.Getenv("INVOCATION_ID") == "" {
		return "", false, "not started by systemd"
	}
	if _, err := os.Stat(filepath.Join(cgroup2Mount, "cgroup.controllers")); err != nil {
		return "", false, "not a cgroup v2 (unified) host"
	}
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", false, err.Error()
	}
	defer f.Close()
	own, err := parseCgroupV2(f)
	if err != nil {
		return "", false, err.Error()
	}
	if path.Base(own) == sandbox.DaemonLeaf {
		own = path.Dir(own)
	}
	if !strings.HasSuffix(own, ".service") {
		return "", false, "cgroup " + own + " is not a service's"
	}
	// systemd marks the cgroups it delegates with this extended attribute.
	buf := make([]byte, 8)
	n, err := unix.Getxattr(filepath.Join(cgroup2Mount, own), "trusted.delegate", buf)
	if err != nil || string(buf[:n]) != "1" {
		return "", false, "the service's cgroup is not delegated (Delegate=yes)"
	}
	return own, true, ""
}

// parseCgroupV2 returns the cgroup v2 path of a /proc/<pid>/cgroup file
// (its "0::<path>" line).
func parseCgroupV2(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			if !strings.HasPrefix(p, "/") {
				return "", fmt.Errorf("cgroup v2 path %q is not absolute", p)
			}
			return p, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no cgroup v2 entry in /proc/self/cgroup")
}
