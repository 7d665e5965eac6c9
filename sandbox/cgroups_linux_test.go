package sandbox

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup1"

	"github.com/webtaskd/webtaskd/sandbox/sandboxtest"
)

// TestPresetBackgroundWeight: a pooled sandbox's CPU cgroup exists at the
// lowest weight before its init joins it (libcontainer writes the weight
// only once init is ready), and undo removes it when no sandbox came.
func TestPresetBackgroundWeight(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPING: creating cgroups needs root")
	}
	parent := sandboxtest.CgroupParent("webtaskd-test-preset-" + strconv.Itoa(os.Getpid()))
	f, err := openFleetCgroup(parent, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.delete(); err != nil {
			t.Error(err)
		}
	})
	undo, err := f.presetBackground("wt-preset")
	if err != nil {
		t.Fatal(err)
	}
	dir, file, want := filepath.Join(unifiedMountpoint, parent, "wt-preset"), "cpu.weight", strconv.Itoa(backgroundCPUWeight)
	if f.v1 != nil {
		dir, file, want = v1Dir(f.v1, cgroup1.Cpu, sandboxCgroupPath(parent, "wt-preset")), "cpu.shares", strconv.Itoa(backgroundCPUShares)
	}
	got, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(got)) != want {
		t.Fatalf("%s of a preset sandbox cgroup: %q, want %s", file, got, want)
	}
	undo()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("after undo the sandbox cgroup %s: %v, want it gone", dir, err)
	}
}
