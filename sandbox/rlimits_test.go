package sandbox_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"

	"github.com/webtaskd/webtaskd/sandbox"
)

// TestRlimitsApplied reads the rlimits back from inside a sandbox (node's
// /proc/self/limits) and checks that the core limit cannot be raised.
func TestRlimitsApplied(t *testing.T) {
	env := newEnv(t)
	mods := buildProbe(t)
	m := newManager(t, env, func(c *sandbox.Config) {
		c.Rootfs.ModulesDir = mods
		c.Limits.Pids = 100
		c.Rlimits = sandbox.Rlimits{MaxOpenFiles: 1000, MaxLockedMemoryBytes: 128 << 10}
		c.PoolSize = 1
		c.LimitsFor = func(container string) (types.Limits, error) {
			if container == "pooled" {
				return types.Limits{Pids: 50}, nil
			}
			return types.Limits{}, nil
		}
	})
	var res struct{ Limits, Probe string }
	mustRun(t, m, "rlimits", `module.exports = function (cb) {
  cb(null, {
    limits: require('fs').readFileSync('/proc/self/limits', 'utf8'),
    probe: require('child_process').execFileSync('/node_modules/probe').toString(),
  });
};`, &res)
	t.Logf("inside the sandbox:\n%s", res.Limits)
	for name, want := range map[string]string{
		"Max open files":     "1000 1000",
		"Max core file size": "0 0",
		"Max locked memory":  "131072 131072",
		"Max processes":      "100 100",
	} {
		re := regexp.MustCompile(`(?m)^` + name + `\s+(\S+)\s+(\S+)`)
		mm := re.FindStringSubmatch(res.Limits)
		if mm == nil {
			t.Errorf("%s not in /proc/self/limits", name)
			continue
		}
		if got := mm[1] + " " + mm[2]; got != want {
			t.Errorf("%s: soft/hard %s, want %s", name, got, want)
		}
	}
	if !strings.Contains(res.Probe, "\nraise_core=EPERM\n") {
		t.Errorf("the sandbox could raise its core limit (want raise_core=EPERM):\n%s", res.Probe)
	}

	// A pooled sandbox given to a container with its own pids limit gets
	// that RLIMIT_NPROC too.
	eventually(t, 30*time.Second, "a pooled sandbox", func() bool { return m.PoolLen() > 0 })
	var limits string
	mustRun(t, m, "pooled", `module.exports = function (cb) { cb(null, require('fs').readFileSync('/proc/self/limits', 'utf8')); };`, &limits)
	if sb := m.SandboxOf("pooled"); sb == nil || sb.Info().Served != types.ServedPooled {
		t.Fatalf("container not served by a pooled sandbox")
	}
	if !regexp.MustCompile(`(?m)^Max processes\s+50\s+50\s`).MatchString(limits) {
		t.Errorf("pooled sandbox assigned pids 50: limits\n%s", limits)
	}
}
