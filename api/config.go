package api

import (
	"errors"
	"fmt"
	"time"

	"github.com/webtaskd/webtaskd/api/editor"
	"github.com/webtaskd/webtaskd/api/httplimit"
)

// Defaults of Config.
const (
	// DefaultMaxBodyBytes caps request bodies.
	DefaultMaxBodyBytes = 5 << 20
	// DefaultLogPingInterval is the keep-alive period of log streams (the
	// browser client gives up after 20 s of silence).
	DefaultLogPingInterval = 15 * time.Second
	// DefaultLogWriteTimeout bounds one write to a log reader; a reader
	// that does not take an event for this long is disconnected.
	DefaultLogWriteTimeout = 10 * time.Second

	// minMaxBodyBytes is the smallest body limit Validate accepts: below
	// it even a small webtask cannot be created.
	minMaxBodyBytes = 1024
)

// Config holds the API server's settings. Start from DefaultConfig; New
// fills zero fields with their defaults and checks the result with Validate.
type Config struct {
	// PublicURL is the base URL for webtask_url and Location headers; ""
	// derives it from the request (scheme + Host).
	PublicURL string
	// MaxBodyBytes caps request bodies (management and run); larger ones
	// get 413.
	MaxBodyBytes int64
	// AllowPrivateCodeURLs lets remote webtask code (http/https url claims,
	// webtask_url) come from loopback, private and link-local addresses.
	// Off by default: tenants must not reach the daemon's network through it.
	AllowPrivateCodeURLs bool
	// LogPingInterval is the keep-alive period of real-time log streams.
	LogPingInterval time.Duration
	// LogWriteTimeout bounds one write to a log reader; a stalled reader
	// is disconnected.
	LogWriteTimeout time.Duration
	// Guard, when set, admits requests per client behind trusted proxies
	// and budgets the request body bytes buffered at once (nil: neither).
	// Not a setting: the daemon builds it from its httplimit.Config.
	Guard *httplimit.Guard
	// NodeID names this daemon in the X-Wt-Node header of every response
	// (which cluster member served it). Not a setting of the API: the
	// daemon's --node-id.
	NodeID string
	// EditorFrameAncestors are the origins that may frame the editor (CSP
	// frame-ancestors sources such as https://app.example or 'self');
	// empty: any origin.
	EditorFrameAncestors []string
}

// DefaultConfig returns the API server's defaults.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:    DefaultMaxBodyBytes,
		LogPingInterval: DefaultLogPingInterval,
		LogWriteTimeout: DefaultLogWriteTimeout,
	}
}

// setDefaults fills zero fields with DefaultConfig's.
func (c *Config) setDefaults() {
	def := DefaultConfig()
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = def.MaxBodyBytes
	}
	if c.LogPingInterval == 0 {
		c.LogPingInterval = def.LogPingInterval
	}
	if c.LogWriteTimeout == 0 {
		c.LogWriteTimeout = def.LogWriteTimeout
	}
}

// Validate returns every problem of c (nil when there is none).
func (c Config) Validate() error {
	var errs []error
	if c.MaxBodyBytes < minMaxBodyBytes {
		errs = append(errs, fmt.Errorf("api: max body bytes %d: at least %d", c.MaxBodyBytes, minMaxBodyBytes))
	}
	if c.LogPingInterval <= 0 || c.LogWriteTimeout <= 0 {
		errs = append(errs, errors.New("api: log ping interval and log write timeout must be positive"))
	}
	if err := editor.ValidateFrameAncestors(c.EditorFrameAncestors); err != nil {
		errs = append(errs, fmt.Errorf("api: %w", err))
	}
	return errors.Join(errs...)
}
