// The test environment: TimeScale, Scale and CgroupParent adapt the
// sandbox and end-to-end tests to the machine they run on, from the
// environment:
//
//   - WEBTASKD_TEST_TIME_SCALE (a number >= 1, default 1) multiplies the
//     tests' own waits and timeouts, so that the same tests hold under
//     emulation (QEMU TCG, where scripts/vm/run.sh runs them, is 10-50x
//     slower than the host). It never shortens a wait.
//   - WEBTASKD_TEST_CGROUP_ROOT (an absolute cgroup path, default the root)
//     is where the tests put their cgroup parents: the cgroup a service
//     manager delegated to them (scripts/vm/run.sh sets the one systemd
//     gives a service with Delegate=yes).

package sandboxtest

import (
	"fmt"
	"os"
	"path"
	"strconv"
	"sync"
	"time"
)

// Environment variables read by this package.
const (
	TimeScaleEnv  = "WEBTASKD_TEST_TIME_SCALE"
	CgroupRootEnv = "WEBTASKD_TEST_CGROUP_ROOT"
)

var factor = sync.OnceValue(func() float64 {
	v := os.Getenv(TimeScaleEnv)
	if v == "" {
		return 1
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 1 {
		panic(fmt.Sprintf("testenv: %s=%q: want a number >= 1", TimeScaleEnv, v))
	}
	return f
})

// TimeScale is the factor Scale applies (1 unless WEBTASKD_TEST_TIME_SCALE
// says otherwise).
func TimeScale() float64 { return factor() }

// Scale stretches a test's wait or timeout d by the time-scale factor.
func Scale(d time.Duration) time.Duration { return time.Duration(float64(d) * factor()) }

// CgroupParent returns the absolute cgroup path of a test's cgroup parent
// called name, below WEBTASKD_TEST_CGROUP_ROOT.
func CgroupParent(name string) string {
	root := os.Getenv(CgroupRootEnv)
	if root == "" {
		root = "/"
	}
	if !path.IsAbs(root) {
		panic(fmt.Sprintf("testenv: %s=%q: want an absolute cgroup path", CgroupRootEnv, root))
	}
	return path.Join(root, name)
}
