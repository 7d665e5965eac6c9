package store

import (
	"context"
	"fmt"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
)

// ErrModuleNotFound: no record of that name@version on this host.
var ErrModuleNotFound = errdefs.New(ErrNotFound, "module not found")

// PutModule creates or replaces the record of m.Name@m.Version; UpdatedAt
// is set to now. It returns the stored record.
func (s *Store) PutModule(ctx context.Context, m types.Module) (*types.Module, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	m.UpdatedAt = s.now().UTC()
	cols, vals, key, args := "", "", "", []any{}
	if s.IsShared() {
		cols, vals, key, args = "node, ", "?, ", "node, ", []any{s.node}
	}
	args = append(args, m.Name, m.Version, m.State, m.Error, m.SizeBytes, m.UpdatedAt.UnixNano())
	_, err := s.db.ExecContext(ctx, `INSERT INTO node_modules (`+cols+`name, version, state, error, size_bytes, updated_at)
		VALUES (`+vals+`?, ?, ?, ?, ?, ?)
		ON CONFLICT (`+key+`name, version) DO UPDATE SET state = excluded.state, error = excluded.error,
			size_bytes = excluded.size_bytes, updated_at = excluded.updated_at`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: put module %s@%s: %w", m.Name, m.Version, err)
	}
	return &m, nil
}

// GetModule returns the record of name@version, or an error wrapping
// ErrModuleNotFound.
func (s *Store) GetModule(ctx context.Context, name, version string) (*types.Module, error) {
	ms, err := s.queryModules(ctx, `name = ? AND version = ?`, ``, name, version)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("store: module %s@%s: %w", name, version, ErrModuleNotFound)
	}
	return &ms[0], nil
}

// ModuleVersions returns every known version of name (ordered by version
// text); none is an empty slice.
func (s *Store) ModuleVersions(ctx context.Context, name string) ([]types.Module, error) {
	return s.queryModules(ctx, `name = ?`, ` ORDER BY version`, name)
}

// ListModules returns every module record, by name then version.
func (s *Store) ListModules(ctx context.Context) ([]types.Module, error) {
	return s.queryModules(ctx, `true`, ` ORDER BY name, version`)
}

// DeleteModule removes the record of name@version (an error wrapping
// ErrModuleNotFound when there is none).
func (s *Store) DeleteModule(ctx context.Context, name, version string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	node, nodeArgs := s.moduleNode()
	res, err := s.db.ExecContext(ctx, `DELETE FROM node_modules WHERE `+node+`name = ? AND version = ?`, append(nodeArgs, name, version)...)
	if err != nil {
		return fmt.Errorf("store: delete module %s@%s: %w", name, version, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("store: module %s@%s: %w", name, version, ErrModuleNotFound)
	}
	return nil
}

// moduleNode scopes module records to this host: on PostgreSQL, shared by
// the cluster's hosts, the WHERE term (ending in AND) and argument of
// this node (Options.NodeID); SQLite has one host.
func (s *Store) moduleNode() (string, []any) {
	if s.IsShared() {
		return "node = ? AND ", []any{s.node}
	}
	return "", nil
}

// queryModules returns this host's records matching cond, then order.
func (s *Store) queryModules(ctx context.Context, cond, order string, args ...any) ([]types.Module, error) {
	node, nodeArgs := s.moduleNode()
	out, err := queryAll(ctx, s.db, scanModule,
		`SELECT name, version, state, error, size_bytes, updated_at FROM node_modules WHERE `+node+cond+order, append(nodeArgs, args...)...)
	if err != nil {
		return nil, fmt.Errorf("store: modules: %w", err)
	}
	return out, nil
}

func scanModule(sc scanner) (types.Module, error) {
	var m types.Module
	var updated int64
	err := sc.Scan(&m.Name, &m.Version, &m.State, &m.Error, &m.SizeBytes, &updated)
	m.UpdatedAt = time.Unix(0, updated).UTC()
	return m, err
}
