package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/webtaskd/webtaskd/rootfs"
)

// lcHost is the machine side of libcontainer sandboxes: libcontainer's
// state root, the rootfs skeleton and the fleet's parent cgroup.
type lcHost struct {
	root         string // libcontainer state root (StateDir/containers)
	cgroupParent string
	layout       *rootfs.Layout
	fleet        *fleetCgroup
	rlimits      Rlimits
	log          *slog.Logger
}

// openHost prepares the host for libcontainer sandboxes: it sweeps what a
// previous daemon left, creates the state root, builds the rootfs skeleton
// and creates (or adopts) the parent cgroup with its memory budget.
func openHost(cfg *Config) (*lcHost, error) {
	cfg.StateDir = filepath.Clean(cfg.StateDir)
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: state dir: %w", err)
	}
	// The sandbox's mapped root walks the rootfs path: keep it traversable.
	if err := os.Chmod(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: state dir: %w", err)
	}
	if err := Sweep(cfg.StateDir, cfg.CgroupParent, cfg.Logger); err != nil {
		return nil, fmt.Errorf("sandbox: sweeping leftovers: %w", err)
	}
	root := filepath.Join(cfg.StateDir, "containers")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox: state dir: %w", err)
	}
	layout, err := rootfs.Build(filepath.Join(cfg.StateDir, "rootfs"), cfg.Rootfs)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	fleet, err := openFleetCgroup(cfg.CgroupParent, cfg.MemoryBudgetBytes)
	if err != nil {
		return nil, err
	}
	return &lcHost{root: root, cgroupParent: cfg.CgroupParent, layout: layout, fleet: fleet, rlimits: cfg.Rlimits, log: cfg.Logger}, nil
}

// newSandbox is the default Config.NewSandbox.
func (h *lcHost) newSandbox(ctx context.Context, o StartOptions) (Sandbox, error) {
	s, err := h.startSandbox(ctx, o)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// close removes the parent cgroup (every sandbox is gone by then), after
// sweeping any child cgroup left behind.
func (h *lcHost) close() error {
	if err := sweepCgroups(h.cgroupParent, h.log); err != nil {
		return err
	}
	return h.fleet.delete()
}
