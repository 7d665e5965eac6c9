// Package cluster runs one webtaskd daemon as a member of a cluster sharing
// a PostgreSQL store (docs/CLUSTER.md): the change feed consumer (cache
// invalidation, revocations, key sets, limits, cron jobs), the member
// heartbeat, the peer credential derived from the key-encryption key, and
// the merging of a container's real-time logs from the other members.
package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// KEKBytes is the size of the key-encryption key: 32 random bytes
// (head -c 32 /dev/urandom > kek).
const KEKBytes = 32

// Defaults of Config.
const (
	// DefaultHeartbeatInterval is how often a member writes its heartbeat
	// and reads the member list.
	DefaultHeartbeatInterval = time.Second
	// DefaultMemberTTL: a member whose last heartbeat is older is not
	// live (no peer log streams, no wtctl fan-out).
	DefaultMemberTTL = 10 * time.Second
)

// Config is a daemon's cluster settings. The zero Config (no DSN) is the
// single-host mode.
type Config struct {
	// Store is the --store value: "" or "sqlite" (the embedded single-host
	// store in the data dir) or a postgres:// (postgresql://) URL, which
	// makes the daemon a cluster member.
	Store string
	// NodeID names this daemon (x-wt-node, cron claims, members); default
	// the host name.
	NodeID string
	// AdvertiseURL is where the other members reach this daemon's API
	// (peer log streams, wtctl fan-out); default http://<listen address>
	// when that names a host.
	AdvertiseURL string
	// ClusterURL is the load balancer in front of all members: cron runs go
	// through it so that they land on the container's warm member; empty
	// runs them on the member that claimed the tick.
	ClusterURL string
	// KEKFile holds the key-encryption key (KEKBytes bytes), the same file
	// on every member: it wraps the key sets stored in the database and
	// derives the peer credential. Required with a postgres store.
	KEKFile string

	// HeartbeatInterval and MemberTTL: see the defaults. Not flags.
	HeartbeatInterval time.Duration
	MemberTTL         time.Duration

	// KEK is KEKFile's content, read once by Validate. Never logged.
	KEK []byte
}

// Shared reports whether the configuration names a PostgreSQL store
// (cluster mode).
func (c *Config) Shared() bool { return IsPostgresDSN(c.Store) }

// IsPostgresDSN reports whether s is a postgres:// or postgresql:// URL.
func IsPostgresDSN(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Validate checks c once, fills the defaults and reads the key-encryption
// key. listenAddr is the daemon's --listen (the default advertise URL).
// Errors name the flag and never carry the DSN's password or the key.
func (c *Config) Validate(listenAddr string) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.MemberTTL == 0 {
		c.MemberTTL = DefaultMemberTTL
	}
	if c.NodeID == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			bad("--node-id: empty, and the host name is unknown (%v)", err)
		}
		c.NodeID = h
	}
	if strings.ContainsAny(c.NodeID, " \t\r\n,") || len(c.NodeID) > 128 {
		bad("--node-id %q: at most 128 characters, no spaces or commas", c.NodeID)
	}
	switch {
	case c.Store == "" || c.Store == "sqlite":
		for flag, v := range map[string]string{"--key-encryption-key-file": c.KEKFile, "--advertise-url": c.AdvertiseURL, "--cluster-url": c.ClusterURL} {
			if v != "" {
				bad("%s is for cluster mode: it needs --store postgres://…", flag)
			}
		}
		return errors.Join(errs...)
	case !c.Shared():
		bad("--store: want sqlite (the default) or a postgres://user@host:port/db URL")
		return errors.Join(errs...)
	}
	if u, err := url.Parse(c.Store); err != nil || u.Host == "" && u.Query().Get("host") == "" {
		bad("--store: not a postgres://user@host:port/db URL") // the URL itself may hold a password
	}
	if c.KEKFile == "" {
		bad("--store postgres://… needs --key-encryption-key-file (the same %d random bytes on every member: head -c %d /dev/urandom > kek)", KEKBytes, KEKBytes)
	} else if kek, err := readKEK(c.KEKFile); err != nil {
		bad("--key-encryption-key-file: %v", err)
	} else {
		c.KEK = kek
	}
	if c.AdvertiseURL == "" {
		if host, port, err := net.SplitHostPort(listenAddr); err == nil && port != "0" {
			if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
				bad("--advertise-url: --listen %s names no address the other members can reach; give --advertise-url http://<this host>:%s", listenAddr, port)
			} else {
				c.AdvertiseURL = "http://" + listenAddr
			}
		} // port 0 (tests): the bound address, once listening (AdvertiseFor)
	} else if err := checkBaseURL(c.AdvertiseURL); err != nil {
		bad("--advertise-url: %v", err)
	}
	if c.ClusterURL != "" {
		if err := checkBaseURL(c.ClusterURL); err != nil {
			bad("--cluster-url: %v", err)
		}
	}
	if c.HeartbeatInterval < 0 || c.MemberTTL <= c.HeartbeatInterval {
		bad("cluster: the member TTL must exceed the heartbeat interval")
	}
	return errors.Join(errs...)
}

// readKEK reads a key-encryption key file: exactly KEKBytes bytes, not
// readable by group or others.
func readKEK(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by group or others (mode %#o): chmod 600 it", path, fi.Mode().Perm())
	}
	kek, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(kek) != KEKBytes {
		return nil, fmt.Errorf("%s holds %d bytes, want exactly %d random bytes (head -c %d /dev/urandom > %s)", path, len(kek), KEKBytes, KEKBytes, path)
	}
	return kek, nil
}

// checkBaseURL accepts an absolute http(s) URL without query or fragment.
func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q does not parse", s)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: want http(s)://host:port", s)
	}
	return nil
}

// AdvertiseFor returns c.AdvertiseURL, or http://<bound> when it was left
// to the daemon's bound listen address.
func (c *Config) AdvertiseFor(bound string) string {
	if c.AdvertiseURL != "" {
		return c.AdvertiseURL
	}
	return "http://" + bound
}
