package store

import (
	"context"
	"fmt"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
)

// auditKeep is how many audit entries the store keeps (the oldest go).
const auditKeep = 100000

// AddAudit appends e (its ID and, when zero, its At are set here) and
// trims the log to its newest auditKeep entries.
func (s *Store) AddAudit(ctx context.Context, e types.AuditEntry) (err error) {
	defer s.writeDone(&err)
	if e.At.IsZero() {
		e.At = s.now()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: audit: %w", err)
	}
	defer tx.Rollback()
	id, err := queryOneInt64(ctx, tx, `INSERT INTO audit_log (at, jti, action, target, status) VALUES (?, ?, ?, ?, ?) RETURNING id`,
		e.At.UTC().UnixNano(), e.TokenID, e.Action, e.Target, e.Status)
	if err != nil {
		return fmt.Errorf("store: audit: %w", err)
	}
	if id > auditKeep {
		if _, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE id <= ?`, id-auditKeep); err != nil {
			return fmt.Errorf("store: audit: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: audit: %w", err)
	}
	return nil
}

// ListAudit returns up to limit entries, newest first, with an ID below
// beforeID (0: from the newest).
func (s *Store) ListAudit(ctx context.Context, limit int, beforeID int64) ([]types.AuditEntry, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	q := `SELECT id, at, jti, action, target, status FROM audit_log`
	args := []any{}
	if beforeID > 0 {
		q += ` WHERE id < ?`
		args = append(args, beforeID)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: audit: %w", err)
	}
	defer rows.Close()
	out := []types.AuditEntry{}
	for rows.Next() {
		var e types.AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.TokenID, &e.Action, &e.Target, &e.Status); err != nil {
			return nil, fmt.Errorf("store: audit: %w", err)
		}
		e.At = time.Unix(0, at).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}
