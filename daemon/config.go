package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/webtaskd/webtaskd/api"
	"github.com/webtaskd/webtaskd/api/httplimit"
	"github.com/webtaskd/webtaskd/daemon/cluster"
	"github.com/webtaskd/webtaskd/sandbox"
	"github.com/webtaskd/webtaskd/sandbox/logstream"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/modules"
)

// Config is the daemon's whole configuration: the daemon's own settings
// and the configuration of each component, owned (defaults, validation) by
// that component's package. The flags of RegisterFlags bind directly to
// these fields; ParseFlags applies the command line, the environment
// (WEBTASKD_<FLAG>) and the --config file through them. Validate it once
// before use.
type Config struct {
	// ListenAddr is the HTTP API's TCP address.
	ListenAddr string
	// DataDir holds the database, key sets and master.token (persistent).
	DataDir string
	// ConfigFile is a JSON object of flag names to values ({"pool-size": 4,
	// "memory-budget": "4GiB"}), applied below flags and the environment.
	ConfigFile string
	// ShutdownGrace is how long in-flight calls may finish after SIGTERM
	// before sandboxes are killed.
	ShutdownGrace time.Duration
	// ShutdownTimeout is the hard bound on the whole shutdown.
	ShutdownTimeout time.Duration
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// Quotas bound what one container may store: webtasks, cron jobs and
	// storage bytes (0: unlimited). A write past one answers 403 and
	// stores nothing.
	Quotas store.Quotas

	// CodeBlobRetention, when positive, makes the daemon collect every 6
	// hours the code blobs (of unnamed code tokens) that no stored webtask
	// names and the npm module versions that no stored webtask declares,
	// older than this; 0 collects only on demand (wtctl gc).
	CodeBlobRetention time.Duration

	// TLSCertFile and TLSKeyFile, both set, make the API serve HTTPS with
	// this PEM certificate (chain) and key, read again on SIGHUP; both
	// empty serve plain HTTP (behind a TLS-terminating proxy, or loopback).
	TLSCertFile string
	TLSKeyFile  string
	// LogFormat is the daemon log's form on stderr: "text" (slog's
	// key=value lines) or "json" (one JSON object a line, for journald and
	// log shippers).
	LogFormat string

	// API configures the HTTP API server (body limit, public URL, code
	// URL policy, log stream keep-alive).
	API api.Config
	// Sandbox configures the sandbox manager (state dir, cgroup parent,
	// default limits, timeouts, pool, fleet budget). Its callbacks and
	// logger are set by the daemon when it opens.
	Sandbox sandbox.Config
	// Logs configures the real-time log hub (per-reader buffers, backlog).
	Logs logstream.Config
	// HTTP bounds what clients hold of the daemon before authentication
	// (timeouts, connection caps, body budget, trusted proxies).
	HTTP httplimit.Config
	// Modules configures npm module provisioning (npm, bounds of an
	// install, allow-listed scripts, the store's size). Its store directory
	// (<data-dir>/modules), cgroup parent and logger are set by the daemon
	// when it opens.
	Modules modules.Config

	// Cluster makes the daemon a member of a cluster sharing a PostgreSQL
	// store (--store postgres://…, --node-id, --advertise-url,
	// --cluster-url, --key-encryption-key-file); its zero value is the
	// single-host mode on the embedded SQLite store.
	Cluster cluster.Config

	// Clock is the time source of the API (token windows, rate limits) and
	// the store (timestamps). Not a flag: nil means time.Now; tests inject
	// a controllable clock.
	Clock func() time.Time
}

// DefaultConfig returns the embedded defaults: the daemon's own and each
// component's DefaultConfig.
func DefaultConfig() Config {
	return Config{
		ListenAddr:      "127.0.0.1:8721",
		DataDir:         "/var/lib/webtaskd",
		ShutdownGrace:   10 * time.Second,
		ShutdownTimeout: 30 * time.Second,
		LogLevel:        "info",
		LogFormat:       "text",

		API:     api.DefaultConfig(),
		Sandbox: defaultSandboxConfig(),
		Logs:    logstream.DefaultConfig(),
		HTTP:    httplimit.DefaultConfig(),
		Modules: modules.DefaultConfig(),
	}
}

// moduleStoreDir is the provisioned module store, <data-dir>/modules: the
// module manager's directory and the sandboxes' read-only /modules.
func (c *Config) moduleStoreDir() string { return filepath.Join(c.DataDir, "modules") }

// Validate checks the configuration once and returns every problem found:
// the daemon's own settings, then each component's Validate. It makes the
// data and state directories absolute.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		bad("--listen %q: %v", c.ListenAddr, err)
	}
	if c.DataDir == "" {
		bad("--data-dir must not be empty")
	}
	for _, p := range []*string{&c.DataDir, &c.Sandbox.StateDir} {
		if *p == "" {
			continue // an empty state dir is the sandbox package's error
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			bad("%s: %v", *p, err)
			continue
		}
		*p = abs
	}
	if c.ShutdownGrace <= 0 || c.ShutdownTimeout <= 0 {
		bad("--shutdown-grace and --shutdown-timeout must be positive")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.Quotas.MaxWebtasks < 0 || c.Quotas.MaxCronJobs < 0 || c.Quotas.MaxStorageBytes < 0 {
		bad("--max-*-per-container quotas must not be negative")
	}
	if c.CodeBlobRetention < 0 {
		bad("--code-blob-retention must not be negative")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("--tls-cert-file and --tls-key-file go together")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("--log-format %q: want text or json", c.LogFormat)
	}
	sb := c.Sandbox
	if sb.CgroupParent == "" { // automatic (resolveCgroupParent): valid either way
		sb.CgroupParent = sandbox.DefaultCgroupParent
	}
	errs = append(errs, c.Cluster.Validate(c.ListenAddr), c.API.Validate(), sb.Validate(), c.Logs.Validate(), c.HTTP.Validate(), c.Modules.Validate())
	return errors.Join(errs...)
}

// NewLogger returns the daemon's logger on w, in LogFormat at LogLevel.
func (c *Config) NewLogger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// defaultSandboxConfig is sandbox.DefaultConfig with an empty (automatic)
// cgroup parent: under systemd with Delegate=yes on cgroup v2 the sandboxes
// go inside the service's own cgroup, else under
// sandbox.DefaultCgroupParent (resolveCgroupParent, when the daemon opens).
func defaultSandboxConfig() sandbox.Config {
	c := sandbox.DefaultConfig()
	c.CgroupParent = ""
	return c
}
