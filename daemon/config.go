package daemon

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"

	"github.com/webtaskd/webtaskd/api"
	"github.com/webtaskd/webtaskd/api/httplimit"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/rootfs"
	"github.com/webtaskd/webtaskd/sandbox"
	"github.com/webtaskd/webtaskd/sandbox/logstream"
)

// Config is the daemon's whole configuration. Every field has a flag and an
// environment variable (WEBTASKD_ + the flag name in upper case, dashes as
// underscores); flags win over the environment, the environment over the
// defaults below. Validate it once with Validate before use.
type Config struct {
	// ListenAddr is the HTTP API's TCP address.
	ListenAddr string
	// DataDir holds the database, key sets and master.token (persistent).
	DataDir string
	// StateDir holds sandbox runtime state (libcontainer state, rootfs
	// skeleton). It belongs on tmpfs and must not sit under the binary's
	// directory (runc's /proc/self/exe sealing breaks when they nest).
	StateDir string
	// PublicURL is the base of webtask URLs handed to clients; empty means
	// derived from each request's Host header.
	PublicURL string
	// CgroupParent is the absolute cgroup path under which every sandbox's
	// cgroup is created.
	CgroupParent string
	// NodePath is the Node binary bound into sandboxes; empty resolves
	// `node` on PATH.
	NodePath string
	// AllowPrivateCodeURLs lets remote webtask code come from loopback,
	// private and link-local addresses (off: tenants cannot make the daemon
	// fetch from its own network).
	AllowPrivateCodeURLs bool
	// ModulesDir, when set, is a node_modules directory bound read-only at
	// /node_modules in every sandbox (what `require` can load).
	ModulesDir string

	// Limits are the default per-sandbox limits.
	Limits types.Limits
	// IdleTimeout destroys a sandbox that served no call for this long.
	IdleTimeout time.Duration
	// PoolSize is how many generic pre-booted sandboxes wait for never-seen
	// containers (0 disables the pool).
	PoolSize int
	// MaxSandboxes caps the sandboxes assigned to containers; one more
	// evicts the least recently used idle one (0: no cap).
	MaxSandboxes int
	// MemoryBudget is the memory limit of the parent cgroup of all
	// sandboxes, with a unit ("4GiB", "512MiB"); "0" means none.
	MemoryBudget string
	// FreezeAfter freezes (cgroup freezer) a sandbox idle this long; the
	// next call thaws it. 0 never freezes.
	FreezeAfter time.Duration
	// MaxConcurrency caps concurrent calls per container; more queue.
	MaxConcurrency int
	// QueueTimeout bounds a queued call's wait; past it the call gets 429.
	QueueTimeout time.Duration
	// ConfigFile is a JSON object of flag names to values ({"pool-size": 4,
	// "memory-budget": "4GiB"}), applied below flags and the environment.
	ConfigFile string
	// ExecTimeout bounds one invocation; past it the caller gets an error
	// and the sandbox is recycled.
	ExecTimeout time.Duration
	// MaxBodyBytes caps request bodies (management and run).
	MaxBodyBytes int64
	// LogLimitBytes caps the user output captured per invocation.
	LogLimitBytes int
	// LogStreamBufferRecords is how many log records may wait for one
	// real-time log reader; past it the reader loses records (and is told
	// how many), the webtask never waits.
	LogStreamBufferRecords int
	// LogPingInterval is the keep-alive period of real-time log streams.
	LogPingInterval time.Duration

	// HTTP bounds what clients hold of the daemon before authentication
	// (timeouts, connection caps, body budget, trusted proxies).
	HTTP httplimit.Config

	// ShutdownGrace is how long in-flight calls may finish after SIGTERM
	// before sandboxes are killed.
	ShutdownGrace time.Duration
	// ShutdownTimeout is the hard bound on the whole shutdown.
	ShutdownTimeout time.Duration
	// LogLevel is debug, info, warn or error.
	LogLevel string

	// Clock is the time source of the API (token windows, rate limits) and
	// the store (timestamps). Not a flag: nil means time.Now; tests inject
	// a controllable clock.
	Clock func() time.Time

	envErrs []error // unparsable environment values, reported by Validate
}

// DefaultConfig returns the embedded defaults (the sandbox settings'
// come from sandbox.DefaultConfig).
func DefaultConfig() Config {
	sd := sandbox.DefaultConfig()
	return Config{
		ListenAddr:     "127.0.0.1:8721",
		DataDir:        "/var/lib/webtaskd",
		StateDir:       sd.StateDir,
		CgroupParent:   sd.CgroupParent,
		Limits:         sd.Limits,
		IdleTimeout:    sd.IdleTimeout,
		PoolSize:       sd.PoolSize,
		MaxSandboxes:   sd.MaxSandboxes,
		MemoryBudget:   "0",
		FreezeAfter:    sd.FreezeAfter,
		MaxConcurrency: sd.MaxConcurrency,
		QueueTimeout:   sd.QueueTimeout,
		ExecTimeout:    sd.ExecTimeout,
		MaxBodyBytes:   5 << 20,
		LogLimitBytes:  sd.LogLimitBytes,

		LogStreamBufferRecords: logstream.DefaultBufferRecords,
		LogPingInterval:        api.DefaultLogPingInterval,
		HTTP:                   httplimit.DefaultConfig(),
		ShutdownGrace:          10 * time.Second,
		ShutdownTimeout:        30 * time.Second,
		LogLevel:               "info",
	}
}

// sandboxSettings returns the sandbox settings of c (no callbacks);
// sandbox.Config.Validate is their only validation.
func (c *Config) sandboxSettings(budgetBytes int64) sandbox.Config {
	return sandbox.Config{
		StateDir:          c.StateDir,
		CgroupParent:      c.CgroupParent,
		Limits:            c.Limits,
		Rlimits:           sandbox.DefaultRlimits,
		IdleTimeout:       c.IdleTimeout,
		ExecTimeout:       c.ExecTimeout,
		StartTimeout:      sandbox.DefaultStartTimeout,
		LogLimitBytes:     c.LogLimitBytes,
		Rootfs:            rootfs.Options{NodePath: c.NodePath, ModulesDir: c.ModulesDir},
		PoolSize:          c.PoolSize,
		MaxSandboxes:      c.MaxSandboxes,
		MemoryBudgetBytes: budgetBytes,
		FreezeAfter:       c.FreezeAfter,
		MaxConcurrency:    c.MaxConcurrency,
		QueueTimeout:      c.QueueTimeout,
	}
}

// RegisterFlags binds c's fields to fs. Defaults come from c as it is, then
// from the environment.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	str := func(p *string, name, usage string) {
		*p = c.envString(name, *p)
		fs.StringVar(p, name, *p, usage+" (env "+envName(name)+")")
	}
	dur := func(p *time.Duration, name, usage string) {
		*p = c.envDuration(name, *p)
		fs.DurationVar(p, name, *p, usage+" (env "+envName(name)+")")
	}
	num := func(p *int, name, usage string) {
		*p = c.envInt(name, *p)
		fs.IntVar(p, name, *p, usage+" (env "+envName(name)+")")
	}
	str(&c.ListenAddr, "listen", "HTTP API address")
	str(&c.DataDir, "data-dir", "persistent data directory (database, keys, master.token)")
	str(&c.StateDir, "state-dir", "runtime state directory for sandboxes (tmpfs)")
	str(&c.PublicURL, "public-url", "base URL of webtask URLs; empty = from the request's Host")
	str(&c.CgroupParent, "cgroup-parent", "absolute parent cgroup of all sandboxes")
	str(&c.NodePath, "node", "node binary for sandboxes; empty = `node` on PATH")
	str(&c.ModulesDir, "modules-dir", "node_modules directory mounted read-only into sandboxes")
	c.AllowPrivateCodeURLs = envParse(c, "allow-private-code-urls", c.AllowPrivateCodeURLs, strconv.ParseBool)
	fs.BoolVar(&c.AllowPrivateCodeURLs, "allow-private-code-urls", c.AllowPrivateCodeURLs, "let remote webtask code come from loopback, private and link-local addresses (env WEBTASKD_ALLOW_PRIVATE_CODE_URLS)")
	num(&c.Limits.MemoryMB, "memory-mb", "default sandbox memory limit in MiB")
	num(&c.Limits.Pids, "pids", "default sandbox task (pids) limit")
	num(&c.Limits.TmpMB, "tmp-mb", "size of each sandbox's /tmp in MiB")
	c.Limits.CPUs = c.envFloat("cpus", c.Limits.CPUs)
	fs.Float64Var(&c.Limits.CPUs, "cpus", c.Limits.CPUs, "default sandbox CPU quota in cores (env WEBTASKD_CPUS)")
	dur(&c.IdleTimeout, "idle-timeout", "destroy a sandbox idle this long")
	num(&c.PoolSize, "pool-size", "pre-booted generic sandboxes kept ready for never-seen containers (0 disables)")
	num(&c.MaxSandboxes, "max-sandboxes", "sandboxes assigned to containers at most; more evicts the least recently used idle one (0: no cap)")
	str(&c.MemoryBudget, "memory-budget", "memory limit of the parent cgroup of all sandboxes, e.g. 4GiB (0: none)")
	dur(&c.FreezeAfter, "freeze-after", "freeze a sandbox idle this long, thaw it on the next call (0: never)")
	num(&c.MaxConcurrency, "max-concurrency", "default concurrent calls per container; more queue")
	dur(&c.QueueTimeout, "queue-timeout", "how long a queued call waits for a slot before 429")
	str(&c.ConfigFile, "config", "JSON file of flag names to values, below flags and environment")
	dur(&c.ExecTimeout, "exec-timeout", "maximum duration of one invocation")
	c.MaxBodyBytes = int64(c.envInt("max-body-bytes", int(c.MaxBodyBytes)))
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", c.MaxBodyBytes, "request body limit in bytes (env WEBTASKD_MAX_BODY_BYTES)")
	num(&c.LogLimitBytes, "log-limit-bytes", "user output captured per invocation, in bytes")
	num(&c.LogStreamBufferRecords, "log-stream-buffer-records", "log records waiting for one real-time log reader at most; more are dropped for that reader")
	dur(&c.LogPingInterval, "log-ping-interval", "keep-alive period of real-time log streams")
	dur(&c.HTTP.ReadHeaderTimeout, "read-header-timeout", "time a client has to send a request's headers")
	dur(&c.HTTP.ReadTimeout, "read-timeout", "time a client has to send a whole request, body included (the body read deadline)")
	dur(&c.HTTP.IdleTimeout, "http-idle-timeout", "close a keep-alive connection idle this long")
	num(&c.HTTP.MaxConnsPerIP, "max-conns-per-ip", "open connections per source address (trusted proxies: requests in flight per forwarded client); 0: no cap")
	num(&c.HTTP.MaxConns, "max-conns", "open connections in all; more wait in the accept queue (0: no cap)")
	c.HTTP.MaxInflightBodyBytes = int64(c.envInt("max-inflight-body-bytes", int(c.HTTP.MaxInflightBodyBytes)))
	fs.Int64Var(&c.HTTP.MaxInflightBodyBytes, "max-inflight-body-bytes", c.HTTP.MaxInflightBodyBytes, "request body bytes buffered at once over all requests; beyond, 503 (0: no budget) (env WEBTASKD_MAX_INFLIGHT_BODY_BYTES)")
	fs.Func("trusted-proxies", "comma list of proxy addresses or CIDRs whose X-Forwarded-For names the client (env WEBTASKD_TRUSTED_PROXIES)", c.setTrustedProxies)
	if v, ok := os.LookupEnv(envName("trusted-proxies")); ok {
		if err := c.setTrustedProxies(v); err != nil {
			c.envErrs = append(c.envErrs, fmt.Errorf("%s: %v", envName("trusted-proxies"), err))
		}
	}
	dur(&c.ShutdownGrace, "shutdown-grace", "time in-flight calls get to finish on shutdown")
	dur(&c.ShutdownTimeout, "shutdown-timeout", "hard bound on the whole shutdown")
	str(&c.LogLevel, "log-level", "debug, info, warn or error")
}

// Validate checks the configuration once, normalises paths and returns every
// problem found.
func (c *Config) Validate() error {
	errs := append([]error(nil), c.envErrs...)
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		bad("--listen %q: %v", c.ListenAddr, err)
	}
	for _, p := range []*string{&c.DataDir, &c.StateDir} {
		if *p == "" {
			bad("--data-dir and --state-dir must not be empty")
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			bad("%s: %v", *p, err)
			continue
		}
		*p = abs
	}
	if b, err := c.MemoryBudgetBytes(); err != nil {
		bad("--memory-budget %q: %v", c.MemoryBudget, err)
	} else if err := c.sandboxSettings(b).Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ShutdownGrace <= 0 || c.ShutdownTimeout <= 0 {
		bad("timeouts must be positive")
	}
	if c.MaxBodyBytes < 1024 {
		bad("--max-body-bytes %d: at least 1024", c.MaxBodyBytes)
	}
	if c.LogLimitBytes < 0 {
		bad("--log-limit-bytes must not be negative")
	}
	if c.LogStreamBufferRecords < 1 || c.LogPingInterval <= 0 {
		bad("--log-stream-buffer-records and --log-ping-interval must be positive")
	}
	if err := c.HTTP.Validate(); err != nil {
		errs = append(errs, err)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	return errors.Join(errs...)
}

func (c *Config) setTrustedProxies(v string) error {
	p, err := httplimit.ParsePrefixes(v)
	if err != nil {
		return err
	}
	c.HTTP.TrustedProxies = p
	return nil
}

// MemoryBudgetBytes parses MemoryBudget ("0" or a size with a unit: 4GiB,
// 512MiB, 4G).
func (c *Config) MemoryBudgetBytes() (int64, error) {
	v := strings.TrimSpace(c.MemoryBudget)
	if v == "" || v == "0" {
		return 0, nil
	}
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return 0, errors.New("give a unit, e.g. 4GiB or 512MiB")
	}
	n, err := units.RAMInBytes(v)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, errors.New("must not be negative")
	}
	return n, nil
}

// ApplyConfigFile applies ConfigFile (a JSON object of flag names to
// values) to the flags of fs that were set neither on the command line
// nor in the environment. Call it after fs.Parse and before Validate.
func (c *Config) ApplyConfigFile(fs *flag.FlagSet) error {
	if c.ConfigFile == "" {
		return nil
	}
	raw, err := os.ReadFile(c.ConfigFile)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var kv map[string]any
	if err := json.Unmarshal(raw, &kv); err != nil {
		return fmt.Errorf("--config %s: not a JSON object of flag names to values: %w", c.ConfigFile, err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	for name, v := range kv {
		if fs.Lookup(name) == nil || name == "config" {
			errs = append(errs, fmt.Errorf("--config %s: unknown setting %q", c.ConfigFile, name))
			continue
		}
		if _, inEnv := os.LookupEnv(envName(name)); set[name] || inEnv {
			continue
		}
		var sv string
		switch x := v.(type) {
		case string:
			sv = x
		case float64:
			sv = strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			sv = strconv.FormatBool(x)
		default:
			errs = append(errs, fmt.Errorf("--config %s: %q: want a string, number or boolean", c.ConfigFile, name))
			continue
		}
		if err := fs.Set(name, sv); err != nil {
			errs = append(errs, fmt.Errorf("--config %s: %q: %w", c.ConfigFile, name, err))
		}
	}
	return errors.Join(errs...)
}

func envName(flag string) string {
	return "WEBTASKD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func (c *Config) envString(flag, def string) string {
	if v, ok := os.LookupEnv(envName(flag)); ok {
		return v
	}
	return def
}

func (c *Config) envDuration(flag string, def time.Duration) time.Duration {
	return envParse(c, flag, def, time.ParseDuration)
}

func (c *Config) envInt(flag string, def int) int {
	return envParse(c, flag, def, strconv.Atoi)
}

func (c *Config) envFloat(flag string, def float64) float64 {
	return envParse(c, flag, def, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
}

func envParse[T any](c *Config, flag string, def T, parse func(string) (T, error)) T {
	v, ok := os.LookupEnv(envName(flag))
	if !ok {
		return def
	}
	n, err := parse(v)
	if err != nil {
		c.envErrs = append(c.envErrs, fmt.Errorf("%s=%q: %v", envName(flag), v, err))
		return def
	}
	return n
}
