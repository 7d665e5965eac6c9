package sandbox_test

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/webtaskd/webtaskd/sandbox"
)

// TestSharePages: with --share-pages every sandbox's node starts with the
// daemon's V8 seed and inherits PR_SET_MEMORY_MERGE, the kernel merges
// pages of two sandboxes, and Math.random still differs between them (the
// agent reseeds it).
func TestSharePages(t *testing.T) {
	env := newEnv(t)
	for _, f := range []string{"run", "pages_to_scan"} {
		path := "/sys/kernel/mm/ksm/" + f
		was, err := os.ReadFile(path)
		if err != nil {
			t.Skipf("SKIPPING: this kernel has no KSM (%v); --share-pages is refused there", err)
		}
		t.Cleanup(func() { _ = os.WriteFile(path, was, 0) })
	}
	// PR_GET_MEMORY_MERGE (68) exists where PR_SET_MEMORY_MERGE does.
	if _, err := unix.PrctlRetInt(68, 0, 0, 0, 0); err != nil {
		t.Skipf("SKIPPING: this kernel cannot merge a whole process (%v; Linux 6.4+); --share-pages is refused there", err)
	}
	m := newManager(t, env, func(c *sandbox.Config) { c.SharePages = true })

	const code = `module.exports = cb => cb(null, { r: Math.random(), argv: process.execArgv });`
	type out struct {
		R    float64  `json:"r"`
		Argv []string `json:"argv"`
	}
	var a, b out
	mustRun(t, m, "a", code, &a)
	mustRun(t, m, "b", code, &b)
	seed := slices.IndexFunc(a.Argv, func(s string) bool { return strings.HasPrefix(s, "--random-seed=") })
	if seed < 0 || !slices.Contains(b.Argv, a.Argv[seed]) {
		t.Fatalf("node flags of a %v and b %v: want one --random-seed for both", a.Argv, b.Argv)
	}
	if a.R == b.R {
		t.Errorf("Math.random() is %v in both sandboxes: the agent did not reseed it", a.R)
	}
	// Control: without the agent's reseed, the flag makes Math.random equal
	// in every node (what the reseed is for).
	draw := func() string {
		o, err := exec.Command("node", a.Argv[seed], "-e", "process.stdout.write(String(Math.random()))").Output()
		if err != nil {
			t.Fatalf("node: %v", err)
		}
		return string(o)
	}
	if x, y := draw(), draw(); x != y {
		t.Fatalf("control: two nodes with %s drew %s and %s; the flag no longer fixes Math.random", a.Argv[seed], x, y)
	}

	nodeOf := func(container string) int {
		pid := m.SandboxOf(container).Info().Pid
		kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			t.Fatal(err)
		}
		var node int
		if _, err := fmt.Sscan(string(kids), &node); err != nil {
			t.Fatalf("children of tini %d: %q", pid, kids)
		}
		return node
	}
	ksm := func(pid int) string {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/ksm_stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		return string(st)
	}
	na := nodeOf("a")
	if st := ksm(na); !strings.Contains(st, "ksm_merge_any: yes") {
		t.Fatalf("node of a is not mergeable:\n%s", st)
	}
	eventually(t, 60*time.Second, "pages of a's node merged", func() bool {
		var merged int
		for _, l := range strings.Split(ksm(na), "\n") {
			if n, _ := fmt.Sscanf(l, "ksm_merging_pages %d", &merged); n == 1 {
				break
			}
		}
		return merged > 0
	})
}
