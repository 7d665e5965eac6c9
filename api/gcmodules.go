package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
)

// MetaLister lists the values stored webtasks give a meta key
// (*store.Store).
type MetaLister interface {
	MetaValues(ctx context.Context, key string) ([]string, error)
}

// ModuleCollector removes module versions (*modules.Manager): those whose
// record is older than cutoff that inUse does not name and that are not
// being installed.
type ModuleCollector interface {
	Collect(ctx context.Context, cutoff time.Time, inUse func(types.ModuleSpec) bool) (int, error)
}

// CollectModules removes the module versions last recorded before cutoff
// that no stored webtask's wt-node-dependencies names (docs/OPERATIONS.md,
// "Housekeeping"). Built-in modules are never installed, so never
// collected.
func CollectModules(ctx context.Context, webtasks MetaLister, mods ModuleCollector, cutoff time.Time) (int, error) {
	raws, err := webtasks.MetaValues(ctx, MetaDependencies)
	if err != nil {
		return 0, err
	}
	used := map[types.ModuleSpec]bool{}
	for _, raw := range raws {
		// Not parseDependencies: a pair it would refuse (a webtask
		// stored before a rule) still keeps its module.
		var deps map[string]string
		if json.Unmarshal([]byte(raw), &deps) != nil {
			continue // names nothing
		}
		for name, version := range deps {
			used[types.ModuleSpec{Name: name, Version: version}] = true
		}
	}
	return mods.Collect(ctx, cutoff, func(sp types.ModuleSpec) bool { return used[sp] || builtinModules[sp.Name] })
}
