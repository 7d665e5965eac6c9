package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// defaultListLimit is the page size when ListOptions.Limit is 0.
const defaultListLimit = 100

// Clone returns a deep copy of w that the caller may change freely.
func (w *Webtask) Clone() *Webtask {
	c := *w
	c.PB = cloneInt(w.PB)
	c.Meta = cloneStrings(w.Meta)
	c.Params = cloneAny(w.Params)
	c.Secrets = cloneAny(w.Secrets)
	return &c
}

func cloneInt(p *int) *int {
	if p == nil {
		return nil
	}
	n := *p
	return &n
}

func cloneStrings(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// cloneAny deep-copies a JSON-shaped map via a JSON round trip.
func cloneAny(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	var c map[string]any
	if json.Unmarshal(b, &c) != nil {
		return nil
	}
	return c
}

// secretsAD is the associated data binding sealed secrets to their webtask,
// so a sealed blob copied to another row does not open.
func secretsAD(container, name string) []byte {
	return []byte(container + "/" + name)
}

// PutWebtask inserts or replaces the webtask w.Container/w.Name and returns
// the stored copy: CodeHash computed from Code, CreatedAt kept from an
// existing row (else now), UpdatedAt now. w itself is not modified. Secrets
// are sealed before they reach the database. The returned pointer is shared
// with the read cache: treat it as read-only.
func (s *Store) PutWebtask(ctx context.Context, w *Webtask) (_ *Webtask, err error) {
	defer s.writeDone(&err)
	if w == nil {
		return nil, fmt.Errorf("store: put nil webtask")
	}
	metaJSON, err := marshalObject(w.Meta)
	if err != nil {
		return nil, fmt.Errorf("store: put %s/%s: meta: %w", w.Container, w.Name, err)
	}
	paramsJSON, err := marshalObject(w.Params)
	if err != nil {
		return nil, fmt.Errorf("store: put %s/%s: params: %w", w.Container, w.Name, err)
	}
	secretsJSON, err := marshalObject(w.Secrets)
	if err != nil {
		// Do not wrap: a JSON error could quote a secret value.
		return nil, fmt.Errorf("store: put %s/%s: secrets are not JSON-encodable", w.Container, w.Name)
	}
	sealed, kid, err := s.ring.Seal(secretsJSON, secretsAD(w.Container, w.Name))
	if err != nil {
		return nil, fmt.Errorf("store: put %s/%s: seal secrets: %w", w.Container, w.Name, err)
	}

	// The stored copy is decoded from the exact bytes written, so it equals
	// what a later read returns (numbers as float64, etc.).
	out := &Webtask{
		Container: w.Container,
		Name:      w.Name,
		Code:      w.Code,
		CodeHash:  codeHash(w.Code),
		CodeURL:   w.CodeURL,
		PB:        cloneInt(w.PB),
		MB:        w.MB,
		Token:     w.Token,
	}
	if err := decodeObjects(out, metaJSON, paramsJSON, secretsJSON); err != nil {
		return nil, fmt.Errorf("store: put %s/%s: %w", w.Container, w.Name, err)
	}

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	now := s.now().UTC()
	var createdNS int64
	// Quotas are checked in the write's transaction (under writeMu: no
	// other write of this process runs until the insert; other daemons':
	// checkCountQuota's lock).
	err = s.inTx(ctx, func(tx *txn) error {
		quotas, err := s.quotasOf(ctx, tx, out.Container)
		if err != nil {
			return fmt.Errorf("store: put %s/%s: quotas: %w", out.Container, out.Name, err)
		}
		if err := checkCountQuota(ctx, s.db.d, tx, "webtasks", "webtasks", out.Container, out.Name, quotas.MaxWebtasks); err != nil {
			return err
		}
		createdNS, err = queryOneInt64(ctx, tx, `INSERT INTO webtasks
			(container, name, code, code_hash, code_url, meta, params, secrets_sealed, secrets_kid, pb, mb, token, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (container, name) DO UPDATE SET
				code = excluded.code,
				code_hash = excluded.code_hash,
				code_url = excluded.code_url,
				meta = excluded.meta,
				params = excluded.params,
				secrets_sealed = excluded.secrets_sealed,
				secrets_kid = excluded.secrets_kid,
				pb = excluded.pb,
				mb = excluded.mb,
				token = excluded.token,
				updated_at = excluded.updated_at
			RETURNING created_at`,
			out.Container, out.Name, out.Code, out.CodeHash, out.CodeURL, string(metaJSON), string(paramsJSON),
			sealed, kid, out.PB, out.MB, out.Token, now.UnixNano(), now.UnixNano())
		if err != nil {
			return fmt.Errorf("store: put %s/%s: %w", w.Container, w.Name, err)
		}
		return s.notify(ctx, tx, ChangeWebtask, out.Container+"/"+out.Name)
	})
	if err != nil {
		// The outcome may be unknown: drop any cached copy to be safe.
		s.invalidate(out.Container, out.Name)
		return nil, err
	}
	out.CreatedAt = time.Unix(0, createdNS).UTC()
	out.UpdatedAt = time.Unix(0, now.UnixNano()).UTC()

	s.cacheMu.Lock()
	s.gen++
	if !s.closed {
		s.cache[cacheKey{out.Container, out.Name}] = out
	}
	s.cacheMu.Unlock()
	return out, nil
}

// GetWebtask returns the webtask container/name with its secrets unsealed,
// or an error wrapping ErrNotFound. Warm reads are served from memory
// without touching the disk. The returned pointer is shared with the cache
// and other callers: treat it as read-only (use Clone to modify).
func (s *Store) GetWebtask(ctx context.Context, container, name string) (*Webtask, error) {
	k := cacheKey{container, name}
	s.cacheMu.RLock()
	w, ok := s.cache[k]
	gen, closed := s.gen, s.closed
	s.cacheMu.RUnlock()
	if ok {
		return w, nil
	}
	if closed {
		return nil, ErrClosed
	}
	row := s.db.QueryRowContext(ctx, `SELECT `+webtaskColumns+` FROM webtasks WHERE container = ? AND name = ?`, container, name)
	w, err := s.scanWebtask(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: webtask %s/%s: %w", container, name, ErrWebtaskNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get %s/%s: %w", container, name, err)
	}
	s.fill(k, w, gen)
	return w, nil
}

// fill caches w unless a write (or Close) happened since generation gen
// was observed, in which case w may be stale and is dropped.
func (s *Store) fill(k cacheKey, w *Webtask, gen uint64) {
	s.cacheMu.Lock()
	if s.gen == gen && !s.closed {
		s.cache[k] = w
	}
	s.cacheMu.Unlock()
}

// DeleteWebtask removes the webtask (and, by cascade, its stored data), or
// returns an error wrapping ErrNotFound.
func (s *Store) DeleteWebtask(ctx context.Context, container, name string) (err error) {
	defer s.writeDone(&err)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	defer s.invalidate(container, name)
	return s.inTx(ctx, func(tx *txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webtasks WHERE container = ? AND name = ?`, container, name)
		if err != nil {
			return fmt.Errorf("store: delete %s/%s: %w", container, name, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store: delete %s/%s: %w", container, name, err)
		}
		if n == 0 {
			return fmt.Errorf("store: webtask %s/%s: %w", container, name, ErrWebtaskNotFound)
		}
		// Its cron job went with it (cascade).
		if err := s.notify(ctx, tx, ChangeWebtask, container+"/"+name); err != nil {
			return err
		}
		return s.notify(ctx, tx, ChangeCron, container+"/"+name)
	})
}

// ListWebtasks returns webtasks ordered by container, then name, filtered
// by o.Container (if set) and every o.Meta pair, paged by o.Offset and
// o.Limit (0 means 100). Results are fresh copies (not cached); secrets are
// unsealed.
func (s *Store) ListWebtasks(ctx context.Context, o ListOptions) ([]*Webtask, error) {
	where, args := listFilter(s.db.d, "webtasks", o.Container, o.Meta)
	q := `SELECT ` + webtaskColumns + ` FROM webtasks`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := o.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	offset := max(o.Offset, 0)
	q += " ORDER BY container, name LIMIT ? OFFSET ?"
	args = append(args, limit, offset)

	out, err := queryAll(ctx, s.db, s.scanWebtask, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	return out, nil
}

// invalidate drops the cached copy of container/name and stops in-flight
// reads from filling the cache with what they read before this point.
func (s *Store) invalidate(container, name string) {
	s.cacheMu.Lock()
	s.gen++
	delete(s.cache, cacheKey{container, name})
	s.cacheMu.Unlock()
}

// CountWebtasks returns the number of stored webtasks.
func (s *Store) CountWebtasks(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM webtasks`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count: %w", err)
	}
	return n, nil
}

const webtaskColumns = `container, name, code, code_hash, code_url, meta, params, secrets_sealed, secrets_kid, pb, mb, token, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func (s *Store) scanWebtask(sc scanner) (*Webtask, error) {
	var (
		w                                 Webtask
		metaJSON, paramsJSON, sealed, kid string
		createdNS, updatedNS              int64
	)
	if err := sc.Scan(&w.Container, &w.Name, &w.Code, &w.CodeHash, &w.CodeURL, &metaJSON, &paramsJSON,
		&sealed, &kid, &w.PB, &w.MB, &w.Token, &createdNS, &updatedNS); err != nil {
		return nil, err
	}
	secretsJSON := []byte("{}")
	if sealed != "" {
		pt, err := s.ring.Unseal(sealed, kid, secretsAD(w.Container, w.Name))
		if err != nil {
			return nil, fmt.Errorf("webtask %s/%s: secrets: %w", w.Container, w.Name, err)
		}
		secretsJSON = pt
	}
	if err := decodeObjects(&w, []byte(metaJSON), []byte(paramsJSON), secretsJSON); err != nil {
		return nil, fmt.Errorf("webtask %s/%s: %w", w.Container, w.Name, err)
	}
	w.CreatedAt = time.Unix(0, createdNS).UTC()
	w.UpdatedAt = time.Unix(0, updatedNS).UTC()
	return &w, nil
}

// decodeObjects fills w's maps (never nil afterwards).
func decodeObjects(w *Webtask, metaJSON, paramsJSON, secretsJSON []byte) error {
	w.Meta, w.Params, w.Secrets = map[string]string{}, map[string]any{}, map[string]any{}
	if err := json.Unmarshal(metaJSON, &w.Meta); err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	if err := json.Unmarshal(paramsJSON, &w.Params); err != nil {
		return fmt.Errorf("params: %w", err)
	}
	if json.Unmarshal(secretsJSON, &w.Secrets) != nil {
		return errors.New("secrets: invalid JSON") // never quote the value
	}
	// JSON "null" decodes to a nil map.
	if w.Meta == nil {
		w.Meta = map[string]string{}
	}
	if w.Params == nil {
		w.Params = map[string]any{}
	}
	if w.Secrets == nil {
		w.Secrets = map[string]any{}
	}
	return nil
}

// marshalObject encodes m as a JSON object; nil becomes {}.
func marshalObject[M ~map[string]V, V any](m M) ([]byte, error) {
	if m == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(m)
}

func codeHash(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// listFilter builds the WHERE terms (joined with AND by the caller) and
// their arguments shared by the list queries: an optional container, and
// every meta key:value pair held in table.meta (a JSON object).
func listFilter(d dialect, table, container string, meta map[string]string) (where []string, args []any) {
	if container != "" {
		where = append(where, "container = ?")
		args = append(args, container)
	}
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		where = append(where, d.metaHas(table))
		args = append(args, k, meta[k])
	}
	return where, args
}

// queryAll runs a query and returns every row read by scan (an empty, not
// nil, slice when there are none).
func queryAll[T any](ctx context.Context, db querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// queryOneInt64 runs a statement that returns one integer (INSERT …
// RETURNING) and steps it to its end.
func queryOneInt64(ctx context.Context, db querier, query string, args ...any) (int64, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var v int64
	n := 0
	for rows.Next() {
		if err := rows.Scan(&v); err != nil {
			return 0, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if n != 1 {
		return 0, fmt.Errorf("%d rows returned, want 1", n)
	}
	return v, nil
}
