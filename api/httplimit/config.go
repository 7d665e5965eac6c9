// Package httplimit bounds what an HTTP client can hold of the daemon
// before it is authenticated: the http.Server's read-header, read and idle
// timeouts, a cap on connections per source address (and on all
// connections), a budget of request body bytes buffered at once, and the
// client address behind trusted proxies (X-Forwarded-For is honoured only
// from them, so clients behind a load balancer are told apart).
package httplimit

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Config holds the HTTP resource bounds. The zero value is not usable:
// start from DefaultConfig.
type Config struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, headers and body (the
	// body read deadline): a client that announces a body and does not
	// send it is cut off after it.
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout time.Duration
	// MaxConnsPerIP caps the open connections of one source address
	// (trusted proxies excepted) and the requests in flight of one client
	// behind a trusted proxy (0: no cap). More connections are closed at
	// once; more proxied requests get 429.
	MaxConnsPerIP int
	// MaxConns caps all open connections (0: no cap); more wait in the
	// kernel's accept queue.
	MaxConns int
	// MaxInflightBodyBytes is the budget of request body bytes buffered at
	// once, over all requests (0: no budget); a body that does not fit is
	// refused with 503.
	MaxInflightBodyBytes int64
	// TrustedProxies are the addresses (CIDR prefixes) of proxies whose
	// X-Forwarded-For header names the client; empty: none.
	TrustedProxies []netip.Prefix
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		ReadHeaderTimeout:    10 * time.Second,
		ReadTimeout:          60 * time.Second,
		IdleTimeout:          2 * time.Minute,
		MaxConnsPerIP:        256,
		MaxConns:             8192,
		MaxInflightBodyBytes: 256 << 20,
	}
}

// Validate reports every problem of c.
func (c *Config) Validate() error {
	var errs []error
	if c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.IdleTimeout <= 0 {
		errs = append(errs, errors.New("--read-header-timeout, --read-timeout and --http-idle-timeout must be positive"))
	}
	if c.ReadTimeout < c.ReadHeaderTimeout {
		errs = append(errs, fmt.Errorf("--read-timeout %s must not be shorter than --read-header-timeout %s", c.ReadTimeout, c.ReadHeaderTimeout))
	}
	if c.MaxConnsPerIP < 0 || c.MaxConns < 0 || c.MaxInflightBodyBytes < 0 {
		errs = append(errs, errors.New("--max-conns-per-ip, --max-conns and --max-inflight-body-bytes must not be negative"))
	}
	return errors.Join(errs...)
}

// ParsePrefixes parses a comma list of CIDR prefixes or single addresses
// ("10.0.0.0/8,192.0.2.7"); "" is none.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !strings.Contains(item, "/") {
			a, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %v", item, err)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %v", item, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// FormatPrefixes is the inverse of ParsePrefixes.
func FormatPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// trusted reports whether a is one of the trusted proxies.
func (c *Config) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range c.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
