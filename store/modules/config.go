package modules

import (
	"errors"
	"fmt"
)

// DefaultMaxStoreBytes is the default bound of the module store (8 GiB).
const DefaultMaxStoreBytes = 8 << 30

// DefaultConfig is the daemon's module settings before flags (Dir,
// CgroupParent and Logger are the daemon's to set).
func DefaultConfig() Config {
	return Config{
		MaxStoreBytes:      DefaultMaxStoreBytes,
		MaxInstallBytes:    DefaultMaxInstallBytes,
		InstallTimeout:     DefaultInstallTimeout,
		InstallMemoryBytes: DefaultInstallMemory,
		InstallPids:        DefaultInstallPids,
		UID:                DefaultInstallUID,
		GID:                DefaultInstallUID,
		Concurrent:         DefaultConcurrentInstal,
	}
}

// Validate checks the settings a flag can change (zero values elsewhere
// get defaults in Open).
func (c Config) Validate() error {
	var errs []error
	if c.MaxStoreBytes < 0 || c.MaxInstallBytes < 0 {
		errs = append(errs, errors.New("--modules-max-bytes must not be negative"))
	}
	if c.InstallTimeout <= 0 {
		errs = append(errs, errors.New("--modules-install-timeout must be positive"))
	}
	if c.InstallMemoryBytes < 64<<20 {
		errs = append(errs, errors.New("--modules-install-memory must be at least 64MiB"))
	}
	if c.UID <= 0 || c.GID <= 0 || c.UID > 1<<31-2 || c.GID > 1<<31-2 {
		errs = append(errs, fmt.Errorf("--modules-install-uid %d / --modules-install-gid %d: want an unprivileged uid and gid (not 0)", c.UID, c.GID))
	}
	for _, n := range c.AllowScripts {
		if !ValidName(n) {
			errs = append(errs, fmt.Errorf("--modules-allow-scripts: %q is not an npm package name", n))
		}
	}
	return errors.Join(errs...)
}
