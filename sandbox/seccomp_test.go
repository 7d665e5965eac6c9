package sandbox_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webtaskd/webtaskd/sandbox"
)

// probeC calls syscalls the seccomp filter must refuse and prints, for
// each, "name=OK" or "name=<errno>". unshare(CLONE_NEWUSER) and
// ptrace(PTRACE_TRACEME) succeed for an unprivileged process without the
// filter, so they show that the filter's rules fire, not just that a
// filter is loaded.
const probeC = `#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *name, long rc) {
	printf("%s=%s\n", name, rc == 0 ? "OK" : strerrorname_np(errno));
}

int main(void) {
	report("unshare_user", unshare(CLONE_NEWUSER));
	report("ptrace_traceme", ptrace(PTRACE_TRACEME, 0, 0, 0));
	report("mount", mount("none", "/tmp", "tmpfs", 0, 0));
	report("bpf", syscall(SYS_bpf, 0, 0, 0));
	report("keyctl", syscall(SYS_keyctl, 0, 0, 0, 0, 0));
	report("setns", syscall(SYS_setns, 0, 0));
	return 0;
}
`

func TestSeccompRulesFire(t *testing.T) {
	env := newEnv(t)
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatalf("gcc is required for this test (make test installs it): %v", err)
	}
	mods := t.TempDir()
	src := filepath.Join(mods, "probe.c")
	if err := os.WriteFile(src, []byte(probeC), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-static", "-O1", "-o", filepath.Join(mods, "probe"), src).CombinedOutput(); err != nil {
		t.Fatalf("building the static probe: %v\n%s", err, out)
	}
	// Outside any sandbox the discriminating calls succeed for this
	// (root) process, so the probe itself works.
	host, err := exec.Command(filepath.Join(mods, "probe")).Output()
	if err != nil || !strings.Contains(string(host), "unshare_user=OK") {
		t.Fatalf("probe on the host: %v\n%s", err, host)
	}

	m := newManager(t, env, func(c *sandbox.Config) { c.Rootfs.ModulesDir = mods })
	var got string
	mustRun(t, m, "seccomp", `module.exports = function (cb) {
  cb(null, require('child_process').execFileSync('/node_modules/probe').toString());
};`, &got)
	t.Logf("inside the sandbox:\n%s", got)
	for _, name := range []string{"unshare_user", "ptrace_traceme", "mount", "bpf", "keyctl", "setns"} {
		if !strings.Contains(got, name+"=EPERM") {
			t.Errorf("%s was not refused with EPERM by the seccomp filter", name)
		}
	}
}
