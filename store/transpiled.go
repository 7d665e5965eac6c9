package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// GetTranspiled returns the transpiled form of the source whose CodeHash is
// sourceHash in language, and its own CodeHash; ok is false when none is
// stored. Warm reads are answered from memory.
func (s *Store) GetTranspiled(ctx context.Context, sourceHash, language string) (code, hash string, ok bool, err error) {
	key := sourceHash + "/" + language
	if v, hit := s.transpiled.Load(key); hit {
		hash = v.(string)
	} else {
		err = s.db.QueryRowContext(ctx, `SELECT code_hash FROM transpiled WHERE source_hash = ? AND language = ?`,
			sourceHash, language).Scan(&hash)
		if errors.Is(err, sql.ErrNoRows) {
			return "", "", false, nil
		}
		if err != nil {
			return "", "", false, fmt.Errorf("store: transpiled %s: %w", sourceHash, err)
		}
	}
	code, err = s.GetCode(ctx, hash)
	if err != nil {
		return "", "", false, err
	}
	s.transpiled.Store(key, hash)
	return code, hash, true, nil
}

// PutTranspiled stores code as the transpiled form of the source whose
// CodeHash is sourceHash in language (idempotent) and returns code's hash.
func (s *Store) PutTranspiled(ctx context.Context, sourceHash, language, code string) (string, error) {
	hash, err := s.PutCode(ctx, code)
	if err != nil {
		return "", err
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO transpiled (source_hash, language, code_hash) VALUES (?, ?, ?)
		ON CONFLICT (source_hash, language) DO UPDATE SET code_hash = excluded.code_hash`,
		sourceHash, language, hash); err != nil {
		return "", fmt.Errorf("store: put transpiled %s: %w", sourceHash, err)
	}
	s.transpiled.Store(sourceHash+"/"+language, hash)
	return hash, nil
}
