package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"
	"sync"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox/agent"
	"github.com/webtaskd/webtaskd/store/modules"
)

// MetaDependencies is the meta key declaring a webtask's npm modules: a
// JSON string {"name": "exact-version", ...} (reference §3.5).
const MetaDependencies = "wt-node-dependencies"

// maxResolved bounds the cached dependency resolutions; past it arbitrary
// entries are dropped (and resolved again on their next run).
const maxResolved = 1 << 14

// parseDependencies parses and validates a wt-node-dependencies value
// (ErrInvalid naming the problem); the specs come sorted by name.
func parseDependencies(raw string) ([]types.ModuleSpec, error) {
	var m map[string]string
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, errdefs.Errorf(errdefs.ErrInvalid, "meta %s must be a JSON object of module names to exact versions", MetaDependencies)
	}
	specs := make([]types.ModuleSpec, 0, len(m))
	for name, v := range m {
		s := types.ModuleSpec{Name: name, Version: v}
		if err := modules.Validate(s); err != nil {
			return nil, errdefs.Errorf(errdefs.ErrInvalid, "meta %s: %s", MetaDependencies, strings.TrimPrefix(err.Error(), "invalid: "))
		}
		specs = append(specs, s)
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
	return specs, nil
}

// checkDependencies validates meta's wt-node-dependencies at create time
// and asks this host to install the declared modules it has never seen
// (each host installs on demand what its webtasks declare).
func (s *Server) checkDependencies(ctx context.Context, meta map[string]string) error {
	raw, ok := meta[MetaDependencies]
	if !ok {
		return nil
	}
	specs, err := parseDependencies(raw)
	if err != nil {
		return err
	}
	s.provisionUnknown(ctx, specs)
	return nil
}

// provisionUnknown requests the specs this host has no record of; a
// refusal (npm missing, shutting down) is logged, the run answers why.
func (s *Server) provisionUnknown(ctx context.Context, specs []types.ModuleSpec) {
	var unknown []types.ModuleSpec
	for _, sp := range specs {
		if !builtinModules[sp.Name] && s.modules.State(sp) == "" {
			unknown = append(unknown, sp)
		}
	}
	for len(unknown) > 0 {
		n := min(len(unknown), modules.MaxPerRequest)
		if _, err := s.modules.Request(ctx, unknown[:n], false); err != nil {
			s.log.Warn("requesting declared modules", "err", err)
			return
		}
		unknown = unknown[n:]
	}
}

// resolution is a webtask's resolved dependencies for one code hash.
type resolution struct {
	gen     uint64            // the module generation it was made at
	modules map[string]string // agent.Request.Modules
	hash    string            // the code hash standing for code and modules
}

// resolutions caches resolve's answers per code hash and dependency text.
type resolutions struct {
	mu sync.RWMutex
	m  map[[2]string]*resolution
}

// resolve fills req.Modules from meta's wt-node-dependencies and makes
// req.CodeHash stand for the code and the resolution (the agent compiles
// once per pair). Declared modules this host has never seen are requested.
// Warm runs read a cached answer while no module's state changed.
func (s *Server) resolve(ctx context.Context, req *agent.Request, meta map[string]string) error {
	raw, ok := meta[MetaDependencies]
	if !ok || req.Code == "" {
		return nil
	}
	key := [2]string{req.CodeHash, raw}
	gen := s.modules.Generation()
	s.resolved.mu.RLock()
	r := s.resolved.m[key]
	s.resolved.mu.RUnlock()
	if r == nil || r.gen != gen {
		specs, err := parseDependencies(raw)
		if err != nil {
			return err
		}
		s.provisionUnknown(ctx, specs)
		r = &resolution{gen: gen, modules: make(map[string]string, len(specs))}
		h := sha256.New()
		h.Write([]byte(req.CodeHash))
		for _, sp := range specs {
			if builtinModules[sp.Name] {
				continue // the runtime's own
			}
			v := modules.Key(sp)
			switch st := s.modules.State(sp); st {
			case types.ModuleAvailable:
			case "":
				v = "!" + sp.String() + " is not provisioned on this host"
			default:
				v = "!" + sp.String() + " is " + st + " on this host"
			}
			r.modules[sp.Name] = v
			h.Write([]byte("\x00" + sp.Name + "\x00" + v))
		}
		r.hash = hex.EncodeToString(h.Sum(nil))
		s.resolved.mu.Lock()
		if s.resolved.m == nil || len(s.resolved.m) >= maxResolved {
			s.resolved.m = make(map[[2]string]*resolution)
		}
		s.resolved.m[key] = r
		s.resolved.mu.Unlock()
	}
	req.Modules, req.CodeHash = r.modules, r.hash
	return nil
}
