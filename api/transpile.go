package api

import (
	"context"
	"strings"
	"sync"

	"github.com/webtaskd/webtaskd/sandbox/transpile"
	"github.com/webtaskd/webtaskd/store"
)

// TranspiledStore keeps the transpiled (CommonJS) form of source code by
// the source's hash and language (*store.Store). GetTranspiled is on the
// run path of transpiled webtasks and must answer warm reads from memory.
type TranspiledStore interface {
	GetTranspiled(ctx context.Context, sourceHash, language string) (code, hash string, ok bool, err error)
	PutTranspiled(ctx context.Context, sourceHash, language, code string) (hash string, err error)
}

// maxTranspileDecisions bounds the in-memory "does this source need a
// transform" answers; past it arbitrary entries are dropped (and decided
// again, once, on their next run).
const maxTranspileDecisions = 1 << 16

// transpileDecisions remembers, per source hash and language, whether the
// source needs a transform, so a warm run never scans the code again.
type transpileDecisions struct {
	mu sync.RWMutex
	m  map[string]bool
}

func (d *transpileDecisions) get(key string) (needed, ok bool) {
	d.mu.RLock()
	needed, ok = d.m[key]
	d.mu.RUnlock()
	return needed, ok
}

func (d *transpileDecisions) put(key string, needed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = make(map[string]bool)
	}
	for k := range d.m {
		if len(d.m) < maxTranspileDecisions {
			break
		}
		delete(d.m, k)
	}
	d.m[key] = needed
}

// runnable returns the code the sandbox runs for source (whose hash is
// hash) under meta's wt-language: source itself when it is plain CommonJS
// JavaScript or the input of a custom compiler (wt-compiler other than the
// middleware compiler, which compiles JavaScript), else its transpiled form, made once (at create/update time
// for stored code, at the first run for remote code) and stored by
// content. A syntax error is an ErrInvalid naming line and column.
func (s *Server) runnable(ctx context.Context, source, hash string, meta map[string]string) (string, string, error) {
	lang, err := transpile.Language(meta)
	if err != nil {
		return "", "", err
	}
	if c := strings.TrimSpace(meta[MetaCompiler]); c != "" && c != middlewareCompiler {
		// A custom compiler's input is its own language, not JavaScript.
		if hash == "" {
			hash = store.CodeHash(source)
		}
		return source, hash, nil
	}
	if hash == "" {
		hash = store.CodeHash(source)
	}
	key := hash + "/" + lang
	needed, known := s.decisions.get(key)
	if !known {
		needed = transpile.Needed(source, lang)
	}
	if !needed {
		if !known {
			s.decisions.put(key, false)
		}
		return source, hash, nil
	}
	code, outHash, ok, err := s.transpiled.GetTranspiled(ctx, hash, lang)
	if err != nil {
		return "", "", err
	}
	if !ok {
		if code, err = transpile.Transform(source, lang); err != nil {
			return "", "", err
		}
		if outHash, err = s.transpiled.PutTranspiled(ctx, hash, lang, code); err != nil {
			return "", "", err
		}
	}
	if !known {
		s.decisions.put(key, true)
	}
	return code, outHash, nil
}
