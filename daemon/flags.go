package daemon

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	units "github.com/docker/go-units"

	"github.com/webtaskd/webtaskd/api/httplimit"
	"github.com/webtaskd/webtaskd/sandbox"
)

// RegisterFlags binds the settings of c to flags of fs, each flag directly
// to its field (the daemon's or a component's); a flag's default is the
// field's value now. Parse them with ParseFlags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ListenAddr, "listen", c.ListenAddr, "HTTP API address")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "persistent data directory (database, keys, master.token)")
	fs.StringVar(&c.ConfigFile, "config", c.ConfigFile, "JSON file of flag names to values, below flags and environment")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", c.ShutdownGrace, "time in-flight calls get to finish on shutdown")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "hard bound on the whole shutdown")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "daemon log format on stderr: text or json")
	fs.IntVar(&c.Quotas.MaxWebtasks, "max-webtasks-per-container", c.Quotas.MaxWebtasks, "named webtasks one container may hold (0: unlimited)")
	fs.IntVar(&c.Quotas.MaxCronJobs, "max-cron-jobs-per-container", c.Quotas.MaxCronJobs, "cron jobs one container may hold (0: unlimited)")
	fs.Int64Var(&c.Quotas.MaxStorageBytes, "max-storage-bytes-per-container", c.Quotas.MaxStorageBytes, "summed bytes of one container's storage documents (0: unlimited)")
	fs.DurationVar(&c.CodeBlobRetention, "code-blob-retention", c.CodeBlobRetention, "collect unreferenced code blobs and unused npm module versions older than this every 6 hours (0: only on wtctl gc)")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", c.TLSCertFile, "PEM certificate (chain) to serve HTTPS with; reloaded on SIGHUP")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", c.TLSKeyFile, "PEM private key of --tls-cert-file")

	cl := &c.Cluster
	fs.StringVar(&cl.Store, "store", cl.Store, "sqlite (the default: <data-dir>/webtaskd.db) or postgres://user@host:port/db, the store shared by the members of a cluster")
	fs.StringVar(&cl.NodeID, "node-id", cl.NodeID, "this daemon's name (x-wt-node header, cluster members, cron claims); empty = the host name")
	fs.StringVar(&cl.AdvertiseURL, "advertise-url", cl.AdvertiseURL, "cluster: the URL the other members reach this daemon at; empty = http://<listen address>")
	fs.StringVar(&cl.ClusterURL, "cluster-url", cl.ClusterURL, "cluster: the load balancer's URL, through which cron runs go (to the container's warm member); empty = run where claimed")
	fs.StringVar(&cl.KEKFile, "key-encryption-key-file", cl.KEKFile, "cluster: file of 32 random bytes, the same on every member, wrapping the key sets in the database (required with --store postgres://)")

	a := &c.API
	fs.StringVar(&a.PublicURL, "public-url", a.PublicURL, "base URL of webtask URLs; empty = from the request's Host")
	fs.BoolVar(&a.AllowPrivateCodeURLs, "allow-private-code-urls", a.AllowPrivateCodeURLs, "let remote webtask code come from loopback, private and link-local addresses")
	fs.Int64Var(&a.MaxBodyBytes, "max-body-bytes", a.MaxBodyBytes, "request body limit in bytes")
	fs.DurationVar(&a.LogPingInterval, "log-ping-interval", a.LogPingInterval, "keep-alive period of real-time log streams")
	fs.Var(stringList{&a.EditorFrameAncestors}, "editor-frame-ancestors", "comma list of origins that may frame the editor (CSP frame-ancestors), e.g. https://app.example; empty: any")

	s := &c.Sandbox
	fs.StringVar(&s.StateDir, "state-dir", s.StateDir, "runtime state directory for sandboxes (tmpfs)")
	fs.StringVar(&s.CgroupParent, "cgroup-parent", s.CgroupParent, "absolute parent cgroup of all sandboxes; empty = inside the service's cgroup under systemd Delegate=yes, else "+sandbox.DefaultCgroupParent)
	fs.StringVar(&s.Rootfs.NodePath, "node", s.Rootfs.NodePath, "node binary for sandboxes; empty = `node` on PATH")
	fs.StringVar(&s.Rootfs.ModulesDir, "modules-dir", s.Rootfs.ModulesDir, "node_modules directory mounted read-only into sandboxes")
	fs.IntVar(&s.Limits.MemoryMB, "memory-mb", s.Limits.MemoryMB, "default sandbox memory limit in MiB")
	fs.Float64Var(&s.Limits.CPUs, "cpus", s.Limits.CPUs, "default sandbox CPU quota in cores")
	fs.IntVar(&s.Limits.Pids, "pids", s.Limits.Pids, "default sandbox task (pids) limit")
	fs.IntVar(&s.Limits.TmpMB, "tmp-mb", s.Limits.TmpMB, "size of each sandbox's /tmp in MiB")
	fs.DurationVar(&s.IdleTimeout, "idle-timeout", s.IdleTimeout, "destroy a sandbox idle this long")
	fs.IntVar(&s.PoolSize, "pool-size", s.PoolSize, "pre-booted generic sandboxes kept ready for never-seen containers at rest; the pool grows above it with their rate (0 disables)")
	fs.IntVar(&s.MaxSandboxes, "max-sandboxes", s.MaxSandboxes, "sandboxes assigned to containers at most; more evicts the least recently used idle one (0: no cap)")
	fs.Var(byteSize{&s.MemoryBudgetBytes}, "memory-budget", "memory limit of the parent cgroup of all sandboxes, a `size` with a unit, e.g. 4GiB (0: none)")
	fs.BoolVar(&s.SharePages, "share-pages", s.SharePages, "let the kernel merge identical memory pages of sandboxes (KSM, Linux 6.4+): less memory per idle sandbox, less isolation (docs/SECURITY.md)")
	fs.DurationVar(&s.FreezeAfter, "freeze-after", s.FreezeAfter, "freeze a sandbox idle this long, thaw it on the next call (0: never)")
	fs.IntVar(&s.MaxConcurrency, "max-concurrency", s.MaxConcurrency, "default concurrent calls per container; more queue")
	fs.DurationVar(&s.QueueTimeout, "queue-timeout", s.QueueTimeout, "how long a queued call waits for a slot before 429")
	fs.DurationVar(&s.ExecTimeout, "exec-timeout", s.ExecTimeout, "maximum time of one invocation until its response head (status and headers)")
	fs.Int64Var(&s.MaxResponseBytes, "max-response-bytes", s.MaxResponseBytes, "response body budget of one call in bytes; a streamed response past it is cut off")
	fs.DurationVar(&s.StreamIdleTimeout, "stream-idle-timeout", s.StreamIdleTimeout, "a streamed response waiting this long for its next piece is cut off")
	fs.DurationVar(&s.StreamTimeout, "stream-timeout", s.StreamTimeout, "a streamed response running this long after its head is cut off")
	fs.DurationVar(&s.StartTimeout, "start-timeout", s.StartTimeout, "maximum duration of a sandbox's boot until its runtime is ready")
	fs.IntVar(&s.LogLimitBytes, "log-limit-bytes", s.LogLimitBytes, "user output captured per invocation, in bytes")

	h := &c.HTTP
	fs.DurationVar(&h.ReadHeaderTimeout, "read-header-timeout", h.ReadHeaderTimeout, "time a client has to send a request's headers")
	fs.DurationVar(&h.ReadTimeout, "read-timeout", h.ReadTimeout, "time a client has to send a whole request, body included (the body read deadline)")
	fs.DurationVar(&h.IdleTimeout, "http-idle-timeout", h.IdleTimeout, "close a keep-alive connection idle this long")
	fs.IntVar(&h.MaxConnsPerIP, "max-conns-per-ip", h.MaxConnsPerIP, "open connections per source address (trusted proxies: requests in flight per forwarded client); 0: no cap")
	fs.IntVar(&h.MaxConns, "max-conns", h.MaxConns, "open connections in all; more wait in the accept queue (0: no cap)")
	fs.Int64Var(&h.MaxInflightBodyBytes, "max-inflight-body-bytes", h.MaxInflightBodyBytes, "request body bytes buffered at once over all requests; beyond, 503 (0: no budget)")
	fs.Var(prefixList{&h.TrustedProxies}, "trusted-proxies", "comma list of proxy addresses or CIDRs whose X-Forwarded-For names the client")

	fs.IntVar(&c.Logs.BufferRecords, "log-stream-buffer-records", c.Logs.BufferRecords, "log records waiting for one real-time log reader at most; more are dropped for that reader")

	m := &c.Modules
	fs.StringVar(&m.NPM, "npm", m.NPM, "npm client that installs provisioned modules; empty = `npm` on PATH")
	fs.Int64Var(&m.MaxStoreBytes, "modules-max-bytes", m.MaxStoreBytes, "size bound of the module store <data-dir>/modules in bytes (0: none)")
	fs.Var(stringList{&m.AllowScripts}, "modules-allow-scripts", "comma list of npm packages whose install scripts may run (all others: --ignore-scripts)")
	fs.DurationVar(&m.InstallTimeout, "modules-install-timeout", m.InstallTimeout, "time bound of one npm install")
	fs.Var(byteSize{&m.InstallMemoryBytes}, "modules-install-memory", "memory limit of one npm install, a `size` with a unit, e.g. 1GiB")
	fs.IntVar(&m.UID, "modules-install-uid", m.UID, "unprivileged uid npm runs as when the daemon is root")
	fs.IntVar(&m.GID, "modules-install-gid", m.GID, "unprivileged gid npm runs as when the daemon is root")
	fs.StringVar(&m.TarballDir, "modules-tarball-dir", m.TarballDir, "directory of npm pack tarballs installed before asking the registry (air-gapped hosts)")

	fs.VisitAll(func(f *flag.Flag) { f.Usage += " (env " + EnvName(f.Name) + ")" })
}

// ParseFlags parses args with fs (set up by RegisterFlags), then gives each
// flag that args left unset its environment variable (EnvName), then its
// key in the --config file: flags win over the environment, the
// environment over the file, the file over the defaults. Values go through
// the flags themselves, so they parse the same from every source; errors
// name the variable or the file and key.
func (c *Config) ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := EnvName(f.Name)
		v, ok := os.LookupEnv(env)
		if !ok || set[f.Name] {
			return
		}
		if err := setFlag(fs, f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", env, err))
		}
	})
	errs = append(errs, c.applyConfigFile(fs))
	return errors.Join(errs...)
}

// applyConfigFile applies ConfigFile (a JSON object of flag names to
// values) to the flags of fs that were set neither on the command line nor
// in the environment.
func (c *Config) applyConfigFile(fs *flag.FlagSet) error {
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
	set := map[string]bool{} // on the command line or in the environment
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	for name, v := range kv {
		if fs.Lookup(name) == nil || name == "config" {
			errs = append(errs, fmt.Errorf("--config %s: unknown setting %q", c.ConfigFile, name))
			continue
		}
		if set[name] {
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
		if err := setFlag(fs, name, sv); err != nil {
			errs = append(errs, fmt.Errorf("--config %s: %q: %w", c.ConfigFile, name, err))
		}
	}
	return errors.Join(errs...)
}

// setFlag sets a flag from the environment or the config file, with an
// error that names the flag and the value.
func setFlag(fs *flag.FlagSet, name, value string) error {
	if err := fs.Set(name, value); err != nil {
		return fmt.Errorf("invalid value %q for --%s: %w", value, name, err)
	}
	return nil
}

// EnvName is the environment variable of a flag: WEBTASKD_ and the flag's
// name in upper case, dashes as underscores (memory-mb: WEBTASKD_MEMORY_MB).
func EnvName(flag string) string {
	return "WEBTASKD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// byteSize is a flag.Value of a size in bytes written with a unit ("4GiB",
// "512MiB", "4G"); "0" means none.
type byteSize struct{ p *int64 }

func (b byteSize) String() string {
	if b.p == nil || *b.p == 0 {
		return "0"
	}
	return units.BytesSize(float64(*b.p))
}

func (b byteSize) Set(v string) error {
	v = strings.TrimSpace(v)
	if v == "" || v == "0" {
		*b.p = 0
		return nil
	}
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return errors.New("give a unit, e.g. 4GiB or 512MiB")
	}
	n, err := units.RAMInBytes(v)
	if err != nil {
		return err
	}
	if n < 0 {
		return errors.New("must not be negative")
	}
	*b.p = n
	return nil
}

// prefixList is a flag.Value of a comma list of addresses or CIDR prefixes
// ("10.0.0.0/8,192.0.2.7"); "" is none.
type prefixList struct{ p *[]netip.Prefix }

func (l prefixList) String() string {
	if l.p == nil {
		return ""
	}
	return httplimit.FormatPrefixes(*l.p)
}

func (l prefixList) Set(v string) error {
	p, err := httplimit.ParsePrefixes(v)
	if err != nil {
		return err
	}
	*l.p = p
	return nil
}

// stringList is a comma- (or space-) separated flag value.
type stringList struct{ p *[]string }

func (l stringList) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l stringList) Set(v string) error {
	*l.p = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
	return nil
}
