package daemon_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/daemon"
	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

func TestMain(m *testing.M) {
	RunTests(m, "daemon", Child{Env: "WEBTASKD_TEST_CHILD_DAEMON", Run: runChildDaemon})
}

// runChildDaemon runs a daemon in this process for TestKillNineRecovery:
// configuration from the environment, "READY <addr>" on stdout, then serve
// until killed.
func runChildDaemon() int {
	cfg, err := EnvConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	d := daemon.New(cfg, slogToStderr())
	if err := d.Open(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("READY %s\n", d.Addr())
	select {} // until SIGKILL
}

const helloCode = `module.exports = function (ctx, cb) {
  global.calls = (global.calls || 0) + 1;
  cb(null, { hello: ctx.query.who || 'world', calls: global.calls });
};`

// sandboxProcs counts the processes in a sandbox's cgroup.
func sandboxProcs(t *testing.T, parent, id string) int {
	t.Helper()
	for _, p := range []string{
		filepath.Join("/sys/fs/cgroup/pids", parent, id, "cgroup.procs"),
		filepath.Join("/sys/fs/cgroup", parent, id, "cgroup.procs"),
	} {
		raw, err := os.ReadFile(p)
		if err == nil {
			return len(strings.Fields(string(raw)))
		}
	}
	t.Fatalf("no cgroup.procs for sandbox %s under %s", id, parent)
	return 0
}

func TestCreateAndRunWarm(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))

	// 1. Create through the v1 issue path, as wt-cli does.
	r := env.Call("POST", "/api/tokens/issue", env.Master, map[string]any{
		"ten": "acme", "jtn": "hello", "code": helloCode, "dd": 0, "dr": 1, "mb": 1,
	})
	MustStatus(t, r, 200, "issue")
	tok := strings.TrimSpace(string(r.Body))
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("issue body is not a raw JWT: %q", r.Body)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if bytes.Contains(bytes.ToLower(hdr), []byte(`"typ"`)) {
		t.Errorf("token header carries typ (breaks sandboxjs): %s", hdr)
	}
	loc := r.Header.Get("Location")
	if !strings.HasSuffix(loc, "/api/run/acme/hello") {
		t.Fatalf("Location = %q", loc)
	}

	r = env.Call("GET", "/api/run/acme/hello?who=tester", "", nil)
	MustStatus(t, r, 200, "first run")
	var out struct {
		Hello string `json:"hello"`
		Calls int    `json:"calls"`
	}
	r.JSON(t, &out)
	if out.Hello != "tester" || out.Calls != 1 {
		t.Fatalf("first run = %+v", out)
	}
	list := env.Sandboxes()
	if len(list) != 1 || list[0].Container != "acme" {
		t.Fatalf("Sandboxes after first call = %+v", list)
	}
	first := list[0]
	procs := sandboxProcs(t, env.Cfg.Sandbox.CgroupParent, first.ID)

	// 2. Create through PUT /api/webtask, a 3-arity webtask in the same container.
	env.PutWebtask("acme", "raw", `module.exports = (ctx, req, res) => {
  res.writeHead(201, {'content-type': 'text/plain', 'x-answer': '42'});
  res.end('raw:' + req.method + ' ' + req.url);
};`, nil)
	r = env.Call("POST", "/api/run/acme/raw/sub/path?q=1", "", "payload")
	MustStatus(t, r, 201, "run raw")
	if got := string(r.Body); got != "raw:POST /api/run/acme/raw/sub/path?q=1" {
		t.Errorf("raw body = %q", got)
	}
	if r.Header.Get("x-answer") != "42" {
		t.Errorf("x-answer header = %q", r.Header.Get("x-answer"))
	}

	// 3. The second call of hello is warm: same sandbox, same runtime, no new process.
	r = env.Call("GET", "/api/run/acme/hello", "", nil)
	MustStatus(t, r, 200, "second run")
	r.JSON(t, &out)
	if out.Calls != 2 {
		t.Errorf("second run saw calls=%d: not served by the same Node process", out.Calls)
	}
	list = env.Sandboxes()
	if len(list) != 1 || list[0].ID != first.ID || list[0].Pid != first.Pid {
		t.Fatalf("sandbox changed: before %+v, after %+v", first, list)
	}
	if n := sandboxProcs(t, env.Cfg.Sandbox.CgroupParent, first.ID); n != procs {
		t.Errorf("processes in the sandbox went from %d to %d: a process was started", procs, n)
	}
}

func TestIsolationFromHostDaemonAndNeighbours(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	_, port, _ := net.SplitHostPort(env.D.Addr())

	env.PutWebtask("bravo", "mark", `module.exports = cb => {
  require('fs').writeFileSync('/tmp/bravo-marker', 'b');
  cb(null, { pid: process.pid });
};`, nil)
	MustStatus(t, env.Call("GET", "/api/run/bravo/mark", "", nil), 200, "bravo")

	probe := `module.exports = function (cb) {
  const fs = require('fs'), net = require('net');
  const res = {};
  const tryit = (k, f) => { try { res[k] = f(); } catch (e) { res[k] = 'ERR:' + e.code; } };
  tryit('pids', () => fs.readdirSync('/proc').filter(x => /^\d+$/.test(x)).length);
  tryit('neighbour', () => fs.readFileSync('/tmp/bravo-marker', 'utf8'));
  tryit('shadow', () => fs.readFileSync('/etc/shadow', 'utf8').length);
  tryit('hostroot', () => fs.readdirSync('/root').length);
  tryit('work', () => fs.readdirSync('/work').length);
  tryit('writeRoot', () => { fs.writeFileSync('/owned', 'x'); return 'written'; });
  tryit('writeTmp', () => { fs.writeFileSync('/tmp/ok', 'x'); return 'ok'; });
  // network devices (os.networkInterfaces() needs netlink, refused by seccomp)
  res.ifaces = fs.readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2).map(l => l.split(':')[0].trim()).filter(Boolean);
  const s = net.connect({ host: '127.0.0.1', port: PORT });
  const t = setTimeout(() => { s.destroy(); res.daemon = 'TIMEOUT'; cb(null, res); }, 3000);
  s.on('connect', () => { clearTimeout(t); s.destroy(); res.daemon = 'CONNECTED'; cb(null, res); });
  s.on('error', e => { clearTimeout(t); res.daemon = 'ERR:' + e.code; cb(null, res); });
};`
	// The probe targets the daemon's real port.
	env.PutWebtask("alpha", "probe", strings.Replace(probe, "PORT", port, 1), nil)
	r := env.Call("GET", "/api/run/alpha/probe", "", nil)
	MustStatus(t, r, 200, "probe")
	var got map[string]any
	r.JSON(t, &got)
	t.Logf("probe: %s", r.Body)
	// tini and node only: no host process and none of bravo's.
	if n, _ := got["pids"].(float64); n < 1 || n > 3 {
		t.Errorf("sandbox sees %v processes in /proc, want only its own (<=3)", got["pids"])
	}
	wantErr := map[string]string{"neighbour": "ERR:ENOENT", "shadow": "ERR:ENOENT", "hostroot": "ERR:ENOENT", "work": "ERR:ENOENT", "writeRoot": "ERR:EROFS"}
	for k, want := range wantErr {
		if got[k] != want {
			t.Errorf("%s = %v, want %s", k, got[k], want)
		}
	}
	if got["writeTmp"] != "ok" {
		t.Errorf("writing /tmp = %v, want ok", got["writeTmp"])
	}
	if ifs, _ := json.Marshal(got["ifaces"]); string(ifs) != `["lo"]` {
		t.Errorf("network interfaces = %s, want only lo", ifs)
	}
	if d, _ := got["daemon"].(string); !strings.HasPrefix(d, "ERR:") {
		t.Errorf("connecting to the daemon's port from a sandbox = %v, want an error", got["daemon"])
	}
}

func TestSecretsSealedAtRest(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	env := Start(t, cfg)
	secret := "s3cr3t-e2e-" + RandHex(8)
	env.PutWebtask("acme", "sec", `module.exports = (ctx, cb) => cb(null, { got: ctx.secrets.API_KEY });`,
		map[string]string{"API_KEY": secret})
	r := env.Call("GET", "/api/run/acme/sec", "", nil)
	MustStatus(t, r, 200, "run")
	if !bytes.Contains(r.Body, []byte(secret)) {
		t.Fatalf("ctx.secrets did not reach the webtask: %s", r.Body)
	}
	r = env.Call("GET", "/api/webtask/acme/sec", env.Master, nil)
	MustStatus(t, r, 200, "get without decrypt")
	if bytes.Contains(r.Body, []byte(secret)) {
		t.Errorf("GET /api/webtask without decrypt returned the secret")
	}
	env.Stop() // flush the WAL into the DB file
	files, _ := filepath.Glob(filepath.Join(cfg.DataDir, "webtaskd.db*"))
	if len(files) == 0 {
		t.Fatal("no database file found")
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("%s contains the secret value in plain text", f)
		}
	}
}

func TestBadInputIsRejectedAndChangesNothing(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.API.MaxBodyBytes = 64 << 10
	env := Start(t, cfg)
	// A tenant token for container "acme" only.
	r := env.Call("POST", "/api/tokens/issue", env.Master, map[string]any{"ten": "acme"})
	MustStatus(t, r, 200, "issue tenant token")
	tenant := strings.TrimSpace(string(r.Body))

	long := strings.Repeat("x", 300)
	cases := []struct {
		name, method, path, tok string
		body                    any
		want                    int
	}{
		{"malformed JSON", "PUT", "/api/webtask/acme/a", env.Master, `{"code":`, 400},
		{"code of wrong type", "PUT", "/api/webtask/acme/a", env.Master, `{"code": 5}`, 400},
		{"meta of wrong type", "PUT", "/api/webtask/acme/a", env.Master, `{"code": "module.exports=cb=>cb()", "meta": [1]}`, 400},
		{"neither code nor url", "PUT", "/api/webtask/acme/a", env.Master, `{}`, 400},
		{"dot-dot name", "PUT", "/api/webtask/acme/..%2Fx", env.Master, `{"code":"module.exports=cb=>cb()"}`, 400},
		{"300-char name", "PUT", "/api/webtask/acme/" + long, env.Master, `{"code":"module.exports=cb=>cb()"}`, 400},
		{"300-char container", "PUT", "/api/webtask/" + long + "/a", env.Master, `{"code":"module.exports=cb=>cb()"}`, 400},
		{"body over the limit", "PUT", "/api/webtask/acme/a", env.Master, `{"code":"` + strings.Repeat("a", 100<<10) + `"}`, 413},
		{"issue malformed", "POST", "/api/tokens/issue", env.Master, `{"ten":`, 400},
		{"issue bad jtn", "POST", "/api/tokens/issue", env.Master, `{"ten":"acme","jtn":"../x","code":"module.exports=cb=>cb()"}`, 400},
		{"issue dd wrong type", "POST", "/api/tokens/issue", env.Master, `{"ten":"acme","jtn":"a","dd":"lots","code":"module.exports=cb=>cb()"}`, 400},
		{"no token", "PUT", "/api/webtask/acme/a", "", `{"code":"module.exports=cb=>cb()"}`, 403},
		{"garbage token", "PUT", "/api/webtask/acme/a", "not.a.jwt", `{"code":"module.exports=cb=>cb()"}`, 403},
		{"forged token", "PUT", "/api/webtask/acme/a", tamper(env.Master), `{"code":"module.exports=cb=>cb()"}`, 403},
		{"foreign container", "PUT", "/api/webtask/other/a", tenant, `{"code":"module.exports=cb=>cb()"}`, 403},
		{"tenant on admin API", "GET", "/api/admin/sandboxes", tenant, nil, 403},
		{"run unknown webtask", "GET", "/api/run/acme/nope", "", nil, 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := env.Call(c.method, c.path, c.tok, c.body)
			if r.Status != c.want {
				t.Fatalf("status %d, want %d: %s", r.Status, c.want, r.Body)
			}
			var e struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
				ReqID   string `json:"req_id"`
			}
			r.JSON(t, &e)
			if e.Code != c.want || e.Message == "" || e.ReqID == "" {
				t.Errorf("error body %s lacks code/message/req_id", r.Body)
			}
		})
	}
	r = env.Call("GET", "/api/webtask", env.Master, nil)
	MustStatus(t, r, 200, "list all")
	var all []map[string]any
	r.JSON(t, &all)
	if len(all) != 0 {
		t.Errorf("bad input stored webtasks: %s", r.Body)
	}
}

// tamper flips one character of the signature.
func tamper(tok string) string {
	b := []byte(tok)
	i := len(b) - 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestKillNineRecovery(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	child, addr, master := startChildDaemon(t, cfg)
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = child.Process.Kill()
			_ = child.Wait()
		}
	})
	old := Attach(t, cfg, "http://"+addr, master)
	old.PutWebtask("acme", "survivor", helloCode, map[string]string{"K": "v"})
	MustStatus(t, old.Call("GET", "/api/run/acme/survivor", "", nil), 200, "run before kill")
	list := old.Sandboxes()
	if len(list) != 1 {
		t.Fatalf("want one sandbox, got %+v", list)
	}
	oldSandbox := list[0]

	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	killed = true
	if !ProcAlive(oldSandbox.Pid) {
		t.Logf("note: the sandbox runtime (pid %d) exited by itself when the daemon died", oldSandbox.Pid)
	}

	// Restart on the same directories: the leftovers (the old run's pool
	// sandboxes included) are swept. No pool for the new run, so that any
	// state dir left is the old run's.
	cfg.Sandbox.PoolSize = 0
	env := Start(t, cfg)
	if ProcAlive(oldSandbox.Pid) {
		t.Errorf("sandbox runtime pid %d of the killed daemon survived the restart", oldSandbox.Pid)
	}
	if left := StateLeftovers(cfg.Sandbox.StateDir); len(left) != 0 {
		t.Errorf("state dirs of the old run survived: %v", left)
	}
	for _, c := range CgroupLeftovers(t, cfg.Sandbox.CgroupParent) {
		if strings.HasSuffix(c, "/"+oldSandbox.ID) {
			t.Errorf("cgroup of the old run survived: %s", c)
		}
	}
	r := env.Call("GET", "/api/run/acme/survivor?who=again", "", nil)
	MustStatus(t, r, 200, "run after restart")
	if !bytes.Contains(r.Body, []byte(`"again"`)) {
		t.Errorf("run after restart = %s", r.Body)
	}
}

// TestShutdownLetsInFlightCallsFinish: Close stops accepting, lets a call in
// flight finish within the grace period, then destroys the sandboxes.
func TestShutdownLetsInFlightCallsFinish(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 0
	env := Start(t, cfg)
	env.PutWebtask("acme", "slow", `module.exports = (ctx, cb) => setTimeout(() => cb(null, 'finished'), 1500);`, nil)
	MustStatus(t, env.Call("GET", "/api/run/acme/slow", "", nil), 200, "warm up")

	result := make(chan Response, 1)
	go func() { result <- env.Call("GET", "/api/run/acme/slow", "", nil) }()
	WaitFor(t, "the call to be in flight", 10*time.Second, func() bool {
		list := env.Sandboxes()
		return len(list) == 1 && list[0].InFlight == 1
	})
	pid := env.Sandboxes()[0].Pid
	env.Stop() // returns once shutdown is complete

	r := Receive(t, result, 30*time.Second, "the in-flight call's answer")
	MustStatus(t, r, 200, "call in flight during shutdown")
	if !bytes.Contains(r.Body, []byte("finished")) {
		t.Fatalf("in-flight call answered %s", r.Body)
	}
	if ProcAlive(pid) {
		t.Errorf("sandbox runtime %d survived the shutdown", pid)
	}
	if left := CgroupLeftovers(t, cfg.Sandbox.CgroupParent); len(left) != 0 {
		t.Errorf("cgroups left after shutdown: %v", left)
	}
	if _, err := net.DialTimeout("tcp", env.Base[len("http://"):], time.Second); err == nil {
		t.Errorf("the daemon still accepts connections after shutdown")
	}
}
