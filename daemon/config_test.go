package daemon_test

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/httplimit"
	"github.com/webtaskd/webtaskd/daemon"
)

// parse runs RegisterFlags and ParseFlags on a fresh flag set, as
// `webtaskd serve` does.
func parse(t *testing.T, args ...string) (daemon.Config, error) {
	t.Helper()
	cfg := daemon.DefaultConfig()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	err := cfg.ParseFlags(fs, args)
	return cfg, err
}

func writeConfigFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "webtaskd.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := daemon.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
}

// TestFlagsEnvFilePrecedence sets settings in one, two or three of the
// sources: flags win over the environment, the environment over the file,
// the file over the defaults; each lands in its component's field.
func TestFlagsEnvFilePrecedence(t *testing.T) {
	file := writeConfigFile(t, `{
		"pool-size": 3, "max-sandboxes": 30, "freeze-after": "3s",
		"memory-budget": "4GiB", "allow-private-code-urls": true, "cpus": 1.5,
		"trusted-proxies": "10.0.0.0/8, 192.0.2.1"
	}`)
	t.Setenv("WEBTASKD_CONFIG", file)
	t.Setenv("WEBTASKD_POOL_SIZE", "4")
	t.Setenv("WEBTASKD_MAX_SANDBOXES", "40")
	t.Setenv("WEBTASKD_LOG_STREAM_BUFFER_RECORDS", "99")
	t.Setenv("WEBTASKD_PUBLIC_URL", "https://env.example")

	cfg, err := parse(t, "--pool-size", "5", "--public-url", "https://flag.example")
	if err != nil {
		t.Fatal(err)
	}
	def := daemon.DefaultConfig()
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"pool-size (flag, env, file)", cfg.Sandbox.PoolSize, 5},
		{"public-url (flag, env)", cfg.API.PublicURL, "https://flag.example"},
		{"max-sandboxes (env, file)", cfg.Sandbox.MaxSandboxes, 40},
		{"log-stream-buffer-records (env)", cfg.Logs.BufferRecords, 99},
		{"freeze-after (file)", cfg.Sandbox.FreezeAfter, 3 * time.Second},
		{"memory-budget (file)", cfg.Sandbox.MemoryBudgetBytes, int64(4 << 30)},
		{"allow-private-code-urls (file)", cfg.API.AllowPrivateCodeURLs, true},
		{"cpus (file)", cfg.Sandbox.Limits.CPUs, 1.5},
		{"trusted-proxies (file)", httplimit.FormatPrefixes(cfg.HTTP.TrustedProxies), "10.0.0.0/8,192.0.2.1/32"},
		{"idle-timeout (default)", cfg.Sandbox.IdleTimeout, def.Sandbox.IdleTimeout},
		{"max-body-bytes (default)", cfg.API.MaxBodyBytes, def.API.MaxBodyBytes},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestBadEnvValueNamesTheVariable(t *testing.T) {
	t.Setenv("WEBTASKD_POOL_SIZE", "lots")
	t.Setenv("WEBTASKD_EXEC_TIMEOUT", "30")
	_, err := parse(t)
	if err == nil {
		t.Fatal("bad environment values accepted")
	}
	for _, want := range []string{`WEBTASKD_POOL_SIZE: invalid value "lots" for --pool-size`, `WEBTASKD_EXEC_TIMEOUT: invalid value "30" for --exec-timeout`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	// A flag on the command line hides its variable, bad or not.
	cfg, err := parse(t, "--pool-size", "1", "--exec-timeout", "1s")
	if err != nil {
		t.Fatalf("variables of flags given on the command line were read: %v", err)
	}
	if cfg.Sandbox.PoolSize != 1 || cfg.Sandbox.ExecTimeout != time.Second {
		t.Errorf("pool-size %d, exec-timeout %s: want the flags' 1 and 1s", cfg.Sandbox.PoolSize, cfg.Sandbox.ExecTimeout)
	}
}

func TestMemoryBudgetNeedsAUnit(t *testing.T) {
	t.Setenv("WEBTASKD_MEMORY_BUDGET", "4096")
	_, err := parse(t)
	if err == nil || !strings.Contains(err.Error(), "WEBTASKD_MEMORY_BUDGET") || !strings.Contains(err.Error(), "give a unit") {
		t.Fatalf("memory budget without a unit: err = %v", err)
	}
	cfg, err := parse(t, "--memory-budget", "512MiB")
	if err != nil || cfg.Sandbox.MemoryBudgetBytes != 512<<20 {
		t.Fatalf("--memory-budget 512MiB: %d bytes, err %v", cfg.Sandbox.MemoryBudgetBytes, err)
	}
}

func TestConfigFileErrorsNameTheKey(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{"no-such-flag": 1}`, `unknown setting "no-such-flag"`},
		{`{"config": "other.json"}`, `unknown setting "config"`},
		{`{"pool-size": "many"}`, `"pool-size": invalid value "many" for --pool-size`},
		{`{"pool-size": [1]}`, `"pool-size": want a string, number or boolean`},
		{`[1, 2]`, `not a JSON object of flag names to values`},
	} {
		file := writeConfigFile(t, c.body)
		_, err := parse(t, "--config", file)
		if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("config file %s: err = %v, want one naming the file and saying %q", c.body, err, c.want)
		}
	}
	if _, err := parse(t, "--config", filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing config file was accepted")
	}
}

// TestValidateAsksEachComponent: the daemon's Validate reports the daemon's
// own problems and every component's, all at once.
func TestValidateAsksEachComponent(t *testing.T) {
	cfg, err := parse(t, "--listen", "nowhere", "--log-level", "loud",
		"--max-body-bytes", "10", // api
		"--pids", "10", // sandbox: at least 16, as per container
		"--log-stream-buffer-records", "0", // logstream
	)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{"--listen", "--log-level", "api: max body bytes 10", "pids must be between 16", "logstream:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error does not mention %q:\n%v", want, err)
		}
	}
}

// TestStateDirApartFromTheBinary: runc cannot seal /proc/self/exe when the
// state dir and the binary's directory nest; the daemon refuses to start.
func TestStateDirApartFromTheBinary(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(filepath.Dir(exe), "state"), filepath.Dir(filepath.Dir(exe))} {
		cfg, err := parse(t, "--state-dir", dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "binary's directory") {
			t.Errorf("--state-dir %s around or under the binary's directory: Validate = %v", dir, err)
		}
	}
}

func TestValidateMakesDirectoriesAbsolute(t *testing.T) {
	cfg, err := parse(t, "--data-dir", "var", "--state-dir", "run/state")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if cfg.DataDir != filepath.Join(wd, "var") || cfg.Sandbox.StateDir != filepath.Join(wd, "run/state") {
		t.Errorf("data dir %q, state dir %q: want both under %s", cfg.DataDir, cfg.Sandbox.StateDir, wd)
	}
}

func TestEveryFlagHasItsVariable(t *testing.T) {
	cfg := daemon.DefaultConfig()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if env := daemon.EnvName(f.Name); !strings.HasSuffix(f.Usage, "(env "+env+")") {
			t.Errorf("--%s usage %q does not name %s", f.Name, f.Usage, env)
		}
	})
}

// TestReadmeListsEveryFlag keeps README.md's flag table complete.
func TestReadmeListsEveryFlag(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "| `--") {
			table.WriteString(line)
		}
	}
	cfg := daemon.DefaultConfig()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(table.String(), "`--"+f.Name+"`") {
			t.Errorf("README.md's flag table has no row for --%s", f.Name)
		}
	})
	for _, m := range regexp.MustCompile("`--([a-z0-9-]+)`").FindAllStringSubmatch(table.String(), -1) {
		if fs.Lookup(m[1]) == nil {
			t.Errorf("README.md's flag table lists --%s, which webtaskd serve does not have", m[1])
		}
	}
}

// TestClusterFlags: the cluster flags parse from the command line and the
// environment, are checked once (a postgres store needs a key-encryption
// key file), and the node id defaults to the host name.
func TestClusterFlags(t *testing.T) {
	kek := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(kek, make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WEBTASKD_KEY_ENCRYPTION_KEY_FILE", kek)
	cfg, err := parse(t, "--store", "postgres://u:pw@db:5432/w", "--node-id", "web1", "--cluster-url", "http://lb:8720")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	c := cfg.Cluster
	if !c.Shared() || c.NodeID != "web1" || c.KEKFile != kek || len(c.KEK) != 32 || c.AdvertiseURL != "http://127.0.0.1:8721" || c.ClusterURL != "http://lb:8720" {
		t.Fatalf("cluster config %+v", c)
	}

	t.Setenv("WEBTASKD_KEY_ENCRYPTION_KEY_FILE", "")
	cfg, _ = parse(t, "--store", "postgres://u:pw@db:5432/w")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--key-encryption-key-file") || strings.Contains(err.Error(), "pw@") {
		t.Fatalf("postgres without a key file: %v", err)
	}
	cfg, _ = parse(t)
	if err := cfg.Validate(); err != nil || cfg.Cluster.Shared() {
		t.Fatalf("the default is the single-host store: %v", err)
	}
	if host, _ := os.Hostname(); cfg.Cluster.NodeID != host {
		t.Fatalf("node id %q, want the host name %q", cfg.Cluster.NodeID, host)
	}
}
