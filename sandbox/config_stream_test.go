package sandbox

import (
	"context"
	"errors"
	"testing"

	"github.com/webtaskd/webtaskd/api/types"
)

// The response budget and the stream timeouts: defaults valid, bad values
// refused (daemon-wide and per container), ErrConfig.
func TestStreamSettingsValidate(t *testing.T) {
	c := DefaultConfig()
	c.SetDefaults()
	c.NewSandbox = func(ctx context.Context, o StartOptions) (Sandbox, error) { return nil, nil }
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if c.MaxResponseBytes != DefaultMaxResponseBytes || c.StreamIdleTimeout != DefaultStreamIdleTimeout || c.StreamTimeout != DefaultStreamTimeout {
		t.Fatalf("defaults %d %s %s", c.MaxResponseBytes, c.StreamIdleTimeout, c.StreamTimeout)
	}
	for name, mut := range map[string]func(*Config){
		"budget too small": func(c *Config) { c.MaxResponseBytes = 10 },
		"budget too large": func(c *Config) { c.MaxResponseBytes = 1<<40 + 1 },
		"idle timeout":     func(c *Config) { c.StreamIdleTimeout = -1 },
		"stream timeout":   func(c *Config) { c.StreamTimeout = -1 },
	} {
		bad := c
		mut(&bad)
		if err := bad.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
	if err := ValidateOverride(types.Limits{MaxResponseBytes: 1 << 20}); err != nil {
		t.Errorf("override 1 MiB: %v", err)
	}
	for _, n := range []int64{-1, 100, 1<<40 + 1} {
		if err := ValidateOverride(types.Limits{MaxResponseBytes: n}); !errors.Is(err, ErrConfig) {
			t.Errorf("override %d: %v, want ErrConfig", n, err)
		}
	}
}
