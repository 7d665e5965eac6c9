package sandbox_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/sandbox"
)

func TestHelloWarm(t *testing.T) {
	env := newEnv(t)
	m := newManager(t, env, nil)

	var got string
	mustRun(t, m, "hello", helloCode, &got)
	if got != "hello" {
		t.Fatalf("body = %q, want hello", got)
	}
	list := m.List()
	if len(list) != 1 {
		t.Fatalf("List() = %d sandboxes, want 1", len(list))
	}
	first := list[0]
	procsBefore := cgroupProcs(t, env, first.ID)

	mustRun(t, m, "hello", helloCode, &got)
	list = m.List()
	if len(list) != 1 || list[0].ID != first.ID || list[0].Pid != first.Pid {
		t.Fatalf("second call served by %+v, want the runtime of %+v", list, first)
	}
	if list[0].Invocations != 2 {
		t.Errorf("Invocations = %d, want 2", list[0].Invocations)
	}
	if list[0].MemoryBytes == 0 {
		t.Errorf("MemoryBytes = 0, want the cgroup's usage")
	}
	procsAfter := cgroupProcs(t, env, first.ID)
	if len(procsBefore) != len(procsAfter) || len(procsAfter) != 2 {
		t.Errorf("cgroup procs before %v after %v, want the same 2 (tini + node)", procsBefore, procsAfter)
	}
}

func TestSingleflightStart(t *testing.T) {
	env := newEnv(t)
	m := newManager(t, env, nil)
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() { errs <- run(t, m, "same", helloCode, nil) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	list := m.List()
	if len(list) != 1 || list[0].Invocations != n {
		t.Fatalf("List() = %+v, want one sandbox with %d invocations", list, n)
	}
	if got := stateDirs(t, env); len(got) != 1 {
		t.Fatalf("state dirs %v, want exactly one container started", got)
	}
}

// isolationProbe reports what a webtask can see and do.
const isolationProbe = `module.exports = function (cb) {
  const fs = require('fs'), net = require('net');
  const r = {};
  r.pids = fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x)).map(Number);
  r.shadow = fs.existsSync('/etc/shadow');
  r.root = fs.existsSync('/root');
  r.work = fs.existsSync('/work');
  r.sys = fs.existsSync('/sys/fs/cgroup');
  try { fs.writeFileSync('/evil', 'x'); r.rootWrite = 'ok'; } catch (e) { r.rootWrite = e.code; }
  try { fs.writeFileSync('/usr/bin/node', 'x'); r.nodeWrite = 'ok'; } catch (e) { r.nodeWrite = e.code; }
  fs.writeFileSync('/tmp/secret-' + 'NAME', 'mine');
  r.tmp = fs.readdirSync('/tmp');
  // Network devices of the sandbox's namespace (os.networkInterfaces()
  // needs netlink, which seccomp refuses).
  r.ifaces = fs.readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2).map(l => l.split(':')[0].trim()).filter(Boolean);
  const st = fs.readFileSync('/proc/self/status', 'utf8');
  for (const k of ['CapEff', 'CapBnd', 'NoNewPrivs', 'Seccomp', 'Uid']) {
    const m = st.match(new RegExp('^' + k + ':\\s*(.*)$', 'm'));
    r[k] = m ? m[1].trim() : null;
  }
  r.uid = process.getuid();
  const s = net.connect(PORT, '127.0.0.1');
  s.on('connect', () => { r.connect = 'connected'; s.destroy(); cb(null, r); });
  s.on('error', (e) => { r.connect = e.code; cb(null, r); });
};`

type probe struct {
	Pids       []int    `json:"pids"`
	Shadow     bool     `json:"shadow"`
	Root       bool     `json:"root"`
	Work       bool     `json:"work"`
	Sys        bool     `json:"sys"`
	RootWrite  string   `json:"rootWrite"`
	NodeWrite  string   `json:"nodeWrite"`
	Tmp        []string `json:"tmp"`
	Ifaces     []string `json:"ifaces"`
	CapEff     string
	CapBnd     string
	NoNewPrivs string
	Seccomp    string
	Uid        string
	UID        int    `json:"uid"`
	Connect    string `json:"connect"`
}

func TestIsolation(t *testing.T) {
	env := newEnv(t)
	m := newManager(t, env, nil)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	code := func(name string) string {
		return strings.NewReplacer("NAME", name, "PORT", port).Replace(isolationProbe)
	}

	var b, a probe
	mustRun(t, m, "b", code("b"), &b)
	mustRun(t, m, "a", code("a"), &a)
	t.Logf("probe a: %+v", a)

	if len(a.Pids) > 2 {
		t.Errorf("a sees pids %v, want only its own tini and node", a.Pids)
	}
	for _, p := range a.Pids {
		if p > 10 {
			t.Errorf("a sees pid %d, not one of its own (host or b)", p)
		}
	}
	if a.Shadow || a.Root || a.Work || a.Sys {
		t.Errorf("host paths visible: shadow=%v root=%v work=%v sys=%v", a.Shadow, a.Root, a.Work, a.Sys)
	}
	if a.RootWrite != "EROFS" || a.NodeWrite != "EROFS" {
		t.Errorf("writes to / and node: %q %q, want EROFS", a.RootWrite, a.NodeWrite)
	}
	if !slices.Contains(a.Tmp, "secret-a") || slices.Contains(a.Tmp, "secret-b") {
		t.Errorf("a's /tmp = %v, want its own file and not b's", a.Tmp)
	}
	if !slices.Equal(a.Ifaces, []string{"lo"}) {
		t.Errorf("interfaces %v, want only lo", a.Ifaces)
	}
	if a.Connect == "connected" || a.Connect == "" {
		t.Errorf("connect to host 127.0.0.1:%s = %q, want refused", port, a.Connect)
	}
	select {
	case <-accepted:
		t.Errorf("the host listener accepted a connection from the sandbox")
	default:
	}
	if a.CapEff != "0000000000000000" || a.CapBnd != "0000000000000000" {
		t.Errorf("CapEff %q CapBnd %q, want 0", a.CapEff, a.CapBnd)
	}
	if a.NoNewPrivs != "1" || a.Seccomp != "2" {
		t.Errorf("NoNewPrivs %q Seccomp %q, want 1 and 2", a.NoNewPrivs, a.Seccomp)
	}
	if a.UID != 1000 {
		t.Errorf("uid %d, want 1000", a.UID)
	}
	// On the host the runtime runs as the mapped uid 101000, never root.
	sb := m.SandboxOf("a")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", sb.Info().Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "Uid:\t101000") {
		t.Errorf("host view of the runtime's uid: %s", regexp.MustCompile(`Uid:.*`).FindString(string(status)))
	}
}

func TestIdleReap(t *testing.T) {
	env := newEnv(t)
	m := newManager(t, env, func(c *sandbox.Config) { c.IdleTimeout = time.Second })
	errs := make(chan error, 2)
	for _, c := range []string{"one", "two"} {
		go func() { errs <- run(t, m, c, helloCode, nil) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	list := m.List()
	if len(list) != 2 || list[0].Container != "one" || list[1].Container != "two" || list[0].ID == list[1].ID {
		t.Fatalf("List() = %+v, want two sandboxes", list)
	}
	if got := cgroupChildren(t, env.CgroupParent); len(got) == 0 {
		t.Fatalf("no cgroups under %s while sandboxes run", env.CgroupParent)
	}
	eventually(t, 20*time.Second, "idle sandboxes reaped", func() bool { return len(m.List()) == 0 })
	eventually(t, 10*time.Second, "no cgroup and no state left", func() bool {
		return len(cgroupChildren(t, env.CgroupParent)) == 0 && len(stateDirs(t, env)) == 0
	})
	for _, info := range list {
		if pidAlive(info.Pid) {
			t.Errorf("runtime pid %d still alive", info.Pid)
		}
	}
}

func TestSweepAfterDaemonCrash(t *testing.T) {
	env := newEnv(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), crashChildEnv+"=1", "WT_STATE_DIR="+env.StateDir, "WT_CGROUP_PARENT="+env.CgroupParent)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	var pid int
	if _, err := fmt.Sscanf(line, "PID %d", &pid); err != nil {
		t.Fatalf("child said %q", line)
	}
	if !pidAlive(pid) {
		t.Fatalf("runtime %d not running before the crash", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(stateDirs(t, env)) != 1 || len(cgroupChildren(t, env.CgroupParent)) == 0 {
		t.Fatalf("expected leftovers after the crash: state %v cgroups %v", stateDirs(t, env), cgroupChildren(t, env.CgroupParent))
	}

	m := newManager(t, env, nil)
	if pidAlive(pid) {
		t.Errorf("old runtime pid %d survived the sweep", pid)
	}
	if got := stateDirs(t, env); len(got) != 0 {
		t.Errorf("state dirs left: %v", got)
	}
	if got := cgroupChildren(t, env.CgroupParent); len(got) != 0 {
		t.Errorf("cgroups left: %v", got)
	}
	mustRun(t, m, "crash", helloCode, nil)
}

func TestModulesDir(t *testing.T) {
	env := newEnv(t)
	mods := t.TempDir() // 0700, owned by host root
	if err := os.MkdirAll(filepath.Join(mods, "greeter"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mods, "greeter", "index.js"), []byte(`module.exports = (n) => 'hi ' + n;`), 0o644); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, env, func(c *sandbox.Config) { c.Rootfs.ModulesDir = mods })
	var got string
	mustRun(t, m, "mods", `module.exports = function (cb) { cb(null, require('greeter')('bob')); };`, &got)
	if got != "hi bob" {
		t.Fatalf("got %q", got)
	}
	var werr string
	mustRun(t, m, "mods", `module.exports = function (cb) {
  try { require('fs').writeFileSync('/node_modules/x', 'y'); cb(null, 'ok'); } catch (e) { cb(null, e.code); }
};`, &werr)
	if werr != "EROFS" {
		t.Errorf("write into /node_modules: %q, want EROFS", werr)
	}
}
