package daemon_test

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/daemon"
)

// parseFlags is the daemon's configuration from args (and the
// environment), validated, with test directories.
func parseFlags(t *testing.T, args ...string) (daemon.Config, error) {
	cfg := daemon.DefaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	if err := cfg.ParseFlags(fs, args); err != nil {
		return cfg, err
	}
	cfg.DataDir, cfg.Sandbox.StateDir = t.TempDir(), "/run/webtaskd-flagtest"
	return cfg, cfg.Validate()
}

// TestHTTPBoundFlags: the HTTP bound flags and the environment reach
// Config.HTTP, and bad values are reported by Validate.
func TestHTTPBoundFlags(t *testing.T) {
	parse := func(args ...string) (daemon.Config, error) { return parseFlags(t, args...) }
	t.Setenv("WEBTASKD_MAX_CONNS_PER_IP", "7")
	cfg, err := parse("--trusted-proxies", "10.0.0.0/8, 192.0.2.1", "--read-timeout", "3s", "--read-header-timeout", "1s",
		"--max-inflight-body-bytes", "1048576")
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.HTTP
	if h.MaxConnsPerIP != 7 || h.ReadTimeout != 3*time.Second || h.ReadHeaderTimeout != time.Second ||
		h.MaxInflightBodyBytes != 1<<20 || len(h.TrustedProxies) != 2 || h.TrustedProxies[1].String() != "192.0.2.1/32" {
		t.Fatalf("HTTP config %+v", h)
	}
	if _, err := parse("--trusted-proxies", "10.0.0.0/40"); err == nil {
		t.Fatal("a bad proxy CIDR was accepted")
	}
	if _, err := parse("--read-timeout", "1s", "--read-header-timeout", "5s"); err == nil || !strings.Contains(err.Error(), "--read-timeout") {
		t.Fatalf("read timeout shorter than the header timeout: %v", err)
	}
	if _, err := parse("--max-conns", "-1"); err == nil {
		t.Fatal("a negative --max-conns was accepted")
	}
}
