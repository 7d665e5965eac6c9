package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

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
	// v8Seed is the V8 random seed of every sandbox when pages are
	// shared (Config.SharePages); 0 otherwise.
	v8Seed uint32
	// ksm paces ksmd when pages are shared; nil otherwise.
	ksm *ksmPace
	// room admits boots under the memory budget when pages are shared
	// and there is a budget; nil otherwise.
	room *bootRoom
	// mergeChecked: the first sandbox's node was checked for merging.
	mergeChecked atomic.Bool
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
	h := &lcHost{root: root, cgroupParent: cfg.CgroupParent, layout: layout, fleet: fleet, rlimits: cfg.Rlimits, log: cfg.Logger}
	if cfg.SharePages {
		if h.v8Seed, h.ksm, err = enablePageSharing(cfg.Logger); err != nil {
			_ = fleet.delete()
			return nil, err
		}
		if cfg.MemoryBudgetBytes > 0 {
			h.room = &bootRoom{budget: cfg.MemoryBudgetBytes, used: fleet.workingSet}
		}
	}
	return h, nil
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
	if h.ksm != nil {
		h.ksm.close()
	}
	if err := sweepCgroups(h.cgroupParent, h.log); err != nil {
		return err
	}
	return h.fleet.delete()
}
