// Command vminit is PID 1 of the cgroup v2 test VM (scripts/vm/run.sh):
// it mounts what a systemd host mounts (proc, sys, devtmpfs, tmpfs on /run
// and /tmp, and only the unified cgroup2 hierarchy at /sys/fs/cgroup),
// lays out the cgroups systemd gives a service with Delegate=yes, runs each
// test binary of the plan as that service's main process (a fresh service
// cgroup each; a cgroup left below it afterwards is a failure), prints on
// the console what it found and a one-line verdict, and powers the VM off.
//
// The plan (/vmtest/plan) holds one command line per line (fields split on
// blanks, no quoting); /vmtest/env holds KEY=VALUE lines added to the tests'
// environment. The verdict line is
//
//	VMTEST RESULT tests=N passed=N failed=N skipped=N exit=CODE
//
// and is the last thing printed; the host fails the run without it.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	planFile = "/vmtest/plan"
	envFile  = "/vmtest/env"
	// overlayModule is loaded so that runc can seal /proc/self/exe
	// without copying the binary (a Debian host autoloads it).
	overlayModule = "/vmtest/overlay.ko"
	// serviceCgroup is where systemd puts a service's main process; with
	// Delegate=yes the subtree below it belongs to the service.
	serviceCgroup = "/sys/fs/cgroup/system.slice/webtaskd.service"
)

const searchPath = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"

// controllers are those systemd enables down to a delegated service.
var controllers = []string{"cpuset", "cpu", "io", "memory", "pids"}

// heartbeatEvery is how often vminit says it is alive while the plan runs
// (run.sh's watchdog takes 300 s of console silence for a hung guest).
const heartbeatEvery = 30 * time.Second

func main() {
	fmt.Println() // past the firmware's escape sequences on the console
	code := 1
	stop, stopped := make(chan struct{}), make(chan struct{})
	go heartbeat(time.Now(), stop, stopped)
	defer func() {
		close(stop)
		<-stopped // the verdict is the last line
		fmt.Printf("VMTEST RESULT %s exit=%d\n", counts, code)
		unix.Sync()
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		select {}
	}()
	if err := setup(); err != nil {
		fmt.Println("VMTEST setup failed:", err)
		return
	}
	code = runPlan()
}

// heartbeat prints a line every heartbeatEvery until stop is closed, then
// closes stopped: a test that is slow or deadlocked keeps the console
// talking (its binary's timeout, or the VM's bound, then fails it), a hung
// guest does not.
func heartbeat(start time.Time, stop <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			fmt.Printf("VMTEST alive %s\n", time.Since(start).Round(time.Second))
		}
	}
}

func setup() error {
	os.Setenv("PATH", searchPath)
	mounts := []struct{ src, dst, fstype, opts string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", "mode=0755"},
		{"devpts", "/dev/pts", "devpts", "newinstance,ptmxmode=0666"},
		{"tmpfs", "/dev/shm", "tmpfs", "mode=1777"},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777"},
		// Only cgroup2, with systemd's options.
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", "nsdelegate,memory_recursiveprot"},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, unix.MS_NOSUID, m.opts); err != nil {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	if err := loadModule(overlayModule); err != nil {
		fmt.Println("VMTEST note: overlay module not loaded:", err)
	}
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	// systemd's layout: controllers enabled from the root down to
	// system.slice, the service's own cgroup a leaf holding its process,
	// its subtree_control empty (the service's to manage).
	enable := "+" + strings.Join(controllers, " +")
	for _, dir := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/system.slice"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(enable), 0); err != nil {
			return fmt.Errorf("enabling %s in %s: %w", enable, dir, err)
		}
	}
	return nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.FinitModule(int(f.Fd()), "", 0)
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// testCounts tallies the test verdict lines of `go test -test.v` output
// (subtests included).
type testCounts struct{ passed, failed, skipped int }

func (c testCounts) String() string {
	return fmt.Sprintf("tests=%d passed=%d failed=%d skipped=%d", c.passed+c.failed+c.skipped, c.passed, c.failed, c.skipped)
}

var (
	counts  testCounts
	verdict = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): `)
)

func (c *testCounts) scan(r io.Reader, echo io.Writer) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(echo, line)
		if m := verdict.FindStringSubmatch(line); m != nil {
			switch m[1] {
			case "PASS":
				c.passed++
			case "FAIL":
				c.failed++
			case "SKIP":
				c.skipped++
			}
		}
	}
}

func runPlan() int {
	env := []string{"PATH=" + searchPath, "HOME=/root", "TMPDIR=/tmp"}
	if raw, err := os.ReadFile(envFile); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				env = append(env, l)
			}
		}
	}
	raw, err := os.ReadFile(planFile)
	if err != nil {
		fmt.Println("VMTEST no plan:", err)
		return 1
	}
	report()
	code := 0
	for _, l := range strings.Split(string(raw), "\n") {
		args := strings.Fields(l)
		if len(args) == 0 || strings.HasPrefix(args[0], "#") {
			continue
		}
		if err := runService(args, env); err != nil {
			fmt.Println("VMTEST", err)
			code = 1
		}
	}
	if counts.failed > 0 || counts.skipped > 0 || counts.passed == 0 {
		code = 1
	}
	return code
}

// runService runs one test binary as systemd runs a service's main
// process: started in the service's fresh cgroup; once it exits, the
// cgroup tree must be empty and is removed (systemd trims it). A cgroup
// left below it other than the daemon's own leaf is an error.
func runService(args, env []string) error {
	if err := os.Mkdir(serviceCgroup, 0o755); err != nil {
		return fmt.Errorf("service cgroup: %w", err)
	}
	cg, err := os.Open(serviceCgroup)
	if err != nil {
		return fmt.Errorf("service cgroup: %w", err)
	}
	defer cg.Close()
	start := time.Now()
	fmt.Printf("VMTEST RUN %s\n", strings.Join(args, " "))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Dir = filepath.Dir(args[0])
	// Started straight into the service's cgroup, as systemd does.
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	counts.scan(out, os.Stdout)
	err = cmd.Wait()
	fmt.Printf("VMTEST DONE %s in %s: %v\n", filepath.Base(args[0]), time.Since(start).Round(time.Second), errOrOK(err))
	left := trimCgroups(serviceCgroup)
	for _, l := range left {
		fmt.Printf("VMTEST LEFTOVER cgroup %s\n", l)
	}
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", filepath.Base(args[0]), err)
	case len(left) > 0:
		return fmt.Errorf("%s left %d cgroups behind", filepath.Base(args[0]), len(left))
	}
	return nil
}

// daemonLeaf is the leaf a daemon moves into below its delegated cgroup
// (sandbox/delegate_linux.go): expected, not a leftover.
const daemonLeaf = "supervisor"

// trimCgroups removes the cgroup tree at dir, deepest first, and returns
// the cgroups found below it other than daemonLeaf.
func trimCgroups(dir string) []string {
	var left []string
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		sub := filepath.Join(dir, de.Name())
		if !(dir == serviceCgroup && de.Name() == daemonLeaf) {
			left = append(left, sub)
		}
		left = append(left, trimCgroups(sub)...)
	}
	if err := unix.Rmdir(dir); err != nil {
		fmt.Printf("VMTEST cannot remove %s: %v\n", dir, err)
	}
	return left
}

func errOrOK(err error) any {
	if err == nil {
		return "ok"
	}
	return err
}

// report prints what the tests run on: the kernel, the cgroup mounts and
// controllers, the Node inside.
func report() {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	fmt.Printf("VMTEST kernel: %s\n", unix.ByteSliceToString(uts.Release[:]))
	if raw, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if strings.Contains(l, " - cgroup") {
				fmt.Printf("VMTEST cgroup mount: %s\n", l)
			}
		}
	}
	for _, f := range []string{"/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/system.slice/cgroup.subtree_control"} {
		raw, err := os.ReadFile(f)
		fmt.Printf("VMTEST %s: %s %v\n", f, strings.TrimSpace(string(raw)), errOrNil(err))
	}
	out, err := exec.Command("node", "--version").CombinedOutput()
	fmt.Printf("VMTEST node: %s %v\n", strings.TrimSpace(string(out)), errOrNil(err))
}

func errOrNil(err error) string {
	if err == nil {
		return ""
	}
	return "(" + err.Error() + ")"
}
