package store

import (
	"context"
	"fmt"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
)

// Cluster members: each daemon records itself (node id, URL) on start and
// then heartbeats; Members lists those alive lately. On SQLite the one
// daemon is the only member.

// Heartbeat records that node, reachable at url, is alive now (the
// store's clock). This Store's first heartbeat also sets started_at: call
// it at start, then periodically.
func (s *Store) Heartbeat(ctx context.Context, node, url string) (err error) {
	defer s.writeDone(&err)
	if node == "" {
		return fmt.Errorf("store: heartbeat: empty node id")
	}
	now := s.now().UTC().UnixNano()
	s.membersMu.Lock()
	first := !s.heartbeated
	s.membersMu.Unlock()
	// started_at is reset by this process's first heartbeat only.
	_, err = s.db.ExecContext(ctx, `INSERT INTO cluster_members (node_id, url, started_at, heartbeat_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (node_id) DO UPDATE SET url = excluded.url, heartbeat_at = excluded.heartbeat_at,
			started_at = CASE WHEN ? THEN excluded.started_at ELSE cluster_members.started_at END`,
		node, url, now, now, first)
	if err != nil {
		return fmt.Errorf("store: heartbeat: %w", err)
	}
	s.membersMu.Lock()
	s.heartbeated = true
	s.membersMu.Unlock()
	return nil
}

// Members returns the members whose last heartbeat is within since of now
// (the store's clock), ordered by node id.
func (s *Store) Members(ctx context.Context, since time.Duration) ([]types.Member, error) {
	cutoff := s.now().UTC().Add(-since).UnixNano()
	out, err := queryAll(ctx, s.db, func(sc scanner) (types.Member, error) {
		var (
			m         types.Member
			start, hb int64
		)
		err := sc.Scan(&m.NodeID, &m.URL, &start, &hb)
		m.StartedAt, m.HeartbeatAt = unixTime(start), unixTime(hb)
		return m, err
	}, `SELECT node_id, url, started_at, heartbeat_at FROM cluster_members WHERE heartbeat_at >= ? ORDER BY node_id`, cutoff)
	if err != nil {
		return nil, fmt.Errorf("store: members: %w", err)
	}
	return out, nil
}
