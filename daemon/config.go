package daemon

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/webtaskd/webtaskd/sandbox"
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
	// ModulesDir, when set, is a node_modules directory bound read-only at
	// /node_modules in every sandbox (what `require` can load).
	ModulesDir string

	// Limits are the default per-sandbox limits.
	Limits sandbox.Limits
	// IdleTimeout destroys a sandbox that served no call for this long.
	IdleTimeout time.Duration
	// ExecTimeout bounds one invocation; past it the caller gets an error
	// and the sandbox is recycled.
	ExecTimeout time.Duration
	// MaxBodyBytes caps request bodies (management and run).
	MaxBodyBytes int64
	// LogLimitBytes caps the user output captured per invocation.
	LogLimitBytes int

	// ShutdownGrace is how long in-flight calls may finish after SIGTERM
	// before sandboxes are killed.
	ShutdownGrace time.Duration
	// ShutdownTimeout is the hard bound on the whole shutdown.
	ShutdownTimeout time.Duration
	// LogLevel is debug, info, warn or error.
	LogLevel string

	envErrs []error // unparsable environment values, reported by Validate
}

// DefaultConfig returns the embedded defaults.
func DefaultConfig() Config {
	return Config{
		ListenAddr:      "127.0.0.1:8721",
		DataDir:         "/var/lib/webtaskd",
		StateDir:        "/run/webtaskd",
		CgroupParent:    "/webtaskd",
		Limits:          sandbox.DefaultLimits,
		IdleTimeout:     5 * time.Minute,
		ExecTimeout:     30 * time.Second,
		MaxBodyBytes:    5 << 20,
		LogLimitBytes:   64 << 10,
		ShutdownGrace:   10 * time.Second,
		ShutdownTimeout: 30 * time.Second,
		LogLevel:        "info",
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
	num(&c.Limits.MemoryMB, "memory-mb", "default sandbox memory limit in MiB")
	num(&c.Limits.Pids, "pids", "default sandbox task (pids) limit")
	num(&c.Limits.TmpMB, "tmp-mb", "size of each sandbox's /tmp in MiB")
	c.Limits.CPUs = c.envFloat("cpus", c.Limits.CPUs)
	fs.Float64Var(&c.Limits.CPUs, "cpus", c.Limits.CPUs, "default sandbox CPU quota in cores (env WEBTASKD_CPUS)")
	dur(&c.IdleTimeout, "idle-timeout", "destroy a sandbox idle this long")
	dur(&c.ExecTimeout, "exec-timeout", "maximum duration of one invocation")
	c.MaxBodyBytes = int64(c.envInt("max-body-bytes", int(c.MaxBodyBytes)))
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", c.MaxBodyBytes, "request body limit in bytes (env WEBTASKD_MAX_BODY_BYTES)")
	num(&c.LogLimitBytes, "log-limit-bytes", "user output captured per invocation, in bytes")
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
	if exe, err := os.Executable(); err == nil && c.StateDir != "" {
		dir := filepath.Dir(exe)
		if within(c.StateDir, dir) || within(dir, c.StateDir) {
			bad("--state-dir %s must not be inside or around the binary's directory %s (runc cannot seal /proc/self/exe then)", c.StateDir, dir)
		}
	}
	if !strings.HasPrefix(c.CgroupParent, "/") || c.CgroupParent == "/" {
		bad("--cgroup-parent %q must be an absolute path below the cgroup root", c.CgroupParent)
	}
	if c.Limits.MemoryMB < 32 {
		bad("--memory-mb %d: at least 32 MiB", c.Limits.MemoryMB)
	}
	if c.Limits.CPUs <= 0 {
		bad("--cpus %v must be positive", c.Limits.CPUs)
	}
	if c.Limits.Pids < 16 {
		bad("--pids %d: at least 16 (one node process is ~7 tasks)", c.Limits.Pids)
	}
	if c.Limits.TmpMB < 1 {
		bad("--tmp-mb %d: at least 1", c.Limits.TmpMB)
	}
	if c.IdleTimeout <= 0 || c.ExecTimeout <= 0 || c.ShutdownGrace <= 0 || c.ShutdownTimeout <= 0 {
		bad("timeouts must be positive")
	}
	if c.MaxBodyBytes < 1024 {
		bad("--max-body-bytes %d: at least 1024", c.MaxBodyBytes)
	}
	if c.LogLimitBytes < 0 {
		bad("--log-limit-bytes must not be negative")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	return errors.Join(errs...)
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
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
