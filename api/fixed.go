package api

import (
	"sync"

	"github.com/webtaskd/webtaskd/sandbox/agent"
	"github.com/webtaskd/webtaskd/store"
)

// fixedCacheMax bounds the pre-encoded request parts kept; past it the
// cache starts over (a miss only costs one encoding).
const fixedCacheMax = 4096

// fixedCache keeps, per named webtask, the pre-encoded per-webtask part of
// its agent request (secrets, params, meta, pb, mb, token: agent.Fixed)
// with the store version it was built from. The store hands out one
// immutable *store.Webtask per cached version and a new one after every
// write, so pointer identity is the version: a changed webtask misses and
// is encoded again, nothing needs invalidating.
type fixedCache struct {
	mu sync.RWMutex
	m  map[fixedKey]fixedEntry
}

type fixedKey struct{ container, name string }

type fixedEntry struct {
	w *store.Webtask
	f *agent.Fixed
}

// fixedOf returns w's pre-encoded part, or nil when it cannot be encoded
// (the client then encodes the fields itself and reports the error).
func (s *Server) fixedOf(w *store.Webtask, req *agent.Request) *agent.Fixed {
	k := fixedKey{w.Container, w.Name}
	s.fixed.mu.RLock()
	e, ok := s.fixed.m[k]
	s.fixed.mu.RUnlock()
	if ok && e.w == w {
		return e.f
	}
	f, err := agent.EncodeFixed(req)
	if err != nil {
		return nil
	}
	s.fixed.mu.Lock()
	if s.fixed.m == nil || len(s.fixed.m) >= fixedCacheMax {
		s.fixed.m = make(map[fixedKey]fixedEntry)
	}
	s.fixed.m[k] = fixedEntry{w: w, f: f}
	s.fixed.mu.Unlock()
	return f
}
