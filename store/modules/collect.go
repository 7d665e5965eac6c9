package modules

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
)

// Collect removes the files and the record of every module whose record
// was last updated before cutoff and that inUse does not name, skipping the
// ones being installed, and returns how many it removed
// (docs/OPERATIONS.md, "Housekeeping").
func (m *Manager) Collect(ctx context.Context, cutoff time.Time, inUse func(types.ModuleSpec) bool) (int, error) {
	all, err := m.rec.ListModules(ctx)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, r := range all {
		spec := types.ModuleSpec{Name: r.Name, Version: r.Version}
		if !r.UpdatedAt.Before(cutoff) || inUse(spec) {
			continue
		}
		ok, err := m.collect(ctx, spec, cutoff)
		if err != nil {
			return removed, err
		}
		if ok {
			removed++
			m.log.Info("unused module collected", "module", spec.String())
		}
	}
	return removed, nil
}

// collect removes spec unless it installs or its record changed since it
// was listed (not older than cutoff any more, or gone).
func (m *Manager) collect(ctx context.Context, spec types.ModuleSpec, cutoff time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, busy := m.inflight[Key(spec)]; busy {
		return false, nil
	}
	cur, err := m.rec.GetModule(ctx, spec.Name, spec.Version)
	if errors.Is(err, errdefs.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !cur.UpdatedAt.Before(cutoff) {
		return false, nil
	}
	if err := removeTree(filepath.Join(m.cfg.Dir, Key(spec))); err != nil {
		return false, err
	}
	if err := m.rec.DeleteModule(ctx, spec.Name, spec.Version); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return false, err
	}
	m.setState(spec, "")
	return true, nil
}
