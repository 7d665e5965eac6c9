package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
)

// codeCacheMaxBytes bounds the code held by the in-memory code blob cache;
// past it arbitrary entries are dropped (a dropped blob is read from the
// database again on its next run).
const codeCacheMaxBytes = 64 << 20

// CodeHash is the content address of code: its hex sha256.
func CodeHash(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// PutCode stores code content-addressed (idempotent: storing the same
// code twice keeps one row) and returns its CodeHash. Empty code is code.
func (s *Store) PutCode(ctx context.Context, code string) (_ string, err error) {
	defer s.writeDone(&err)
	hash := CodeHash(code)
	if _, ok := s.codes.get(hash); ok {
		return hash, nil
	}
	if _, err := s.db.ExecContext(ctx,
		`INSERT INTO code_blobs (hash, code, created_at) VALUES (?, ?, ?) ON CONFLICT (hash) DO NOTHING`,
		hash, code, s.now().UnixNano()); err != nil {
		return "", fmt.Errorf("store: put code blob %s: %w", hash, err)
	}
	s.codes.put(hash, code)
	return hash, nil
}

// GetCode returns the code whose CodeHash is hash, from memory when warm
// (blobs never change, so the cache needs no invalidation), else from the
// database; an error wrapping ErrNotFound when no such blob is stored.
func (s *Store) GetCode(ctx context.Context, hash string) (string, error) {
	if code, ok := s.codes.get(hash); ok {
		return code, nil
	}
	var code string
	err := s.db.QueryRowContext(ctx, `SELECT code FROM code_blobs WHERE hash = ?`, hash).Scan(&code)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("code blob %s: %w", hash, ErrCodeNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store: get code blob %s: %w", hash, err)
	}
	s.codes.put(hash, code)
	return code, nil
}

// codeCache is a byte-bounded map of hash -> code; the zero value is ready.
type codeCache struct {
	mu    sync.RWMutex
	m     map[string]string
	bytes int
}

func (c *codeCache) get(hash string) (string, bool) {
	c.mu.RLock()
	code, ok := c.m[hash]
	c.mu.RUnlock()
	return code, ok
}

func (c *codeCache) put(hash, code string) {
	if len(code) > codeCacheMaxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[hash]; ok {
		return
	}
	if c.m == nil {
		c.m = make(map[string]string)
	}
	for h, v := range c.m {
		if c.bytes+len(code) <= codeCacheMaxBytes {
			break
		}
		delete(c.m, h)
		c.bytes -= len(v)
	}
	c.m[hash] = code
	c.bytes += len(code)
}

// cached reports whether hash is in the in-memory cache (tests).
func (c *codeCache) cached(hash string) bool {
	_, ok := c.get(hash)
	return ok
}

// drop removes hash from the cache (collected blobs).
func (c *codeCache) drop(hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[hash]; ok {
		delete(c.m, hash)
		c.bytes -= len(v)
	}
}
