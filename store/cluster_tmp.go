package store

// TEMPORARY scaffold until the store branch's own cron claims and members
// land (dropped at the rebase on main).

import (
	"context"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
)

func (s *Store) ClaimCronTick(ctx context.Context, container, name string, tick time.Time, node string, lease time.Duration) (bool, error) {
	now := s.now()
	res, err := s.db.ExecContext(ctx, `INSERT INTO cron_claims (container, name, tick, node, claimed_at, lease_until)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, container, name, tick.UnixNano(), node, now.UnixNano(), now.Add(lease).UnixNano())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (s *Store) ExpireCronClaims(ctx context.Context, now time.Time) (int, error) {
	type claim struct {
		c, n string
		tick int64
	}
	rows, err := s.db.QueryContext(ctx, `SELECT container, name, tick FROM cron_claims WHERE state = 'running' AND lease_until < ?`, now.UnixNano())
	if err != nil {
		return 0, err
	}
	var cs []claim
	for rows.Next() {
		var c claim
		if err := rows.Scan(&c.c, &c.n, &c.tick); err != nil {
			rows.Close()
			return 0, err
		}
		cs = append(cs, c)
	}
	rows.Close()
	expired := 0
	for _, c := range cs {
		var done int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM cron_results WHERE container = ? AND name = ? AND scheduled_at = ?`, c.c, c.n, c.tick).Scan(&done); err != nil {
			return expired, err
		}
		state := "done"
		if done == 0 {
			state = "expired"
		}
		res, err := s.db.ExecContext(ctx, `UPDATE cron_claims SET state = ? WHERE container = ? AND name = ? AND tick = ? AND state = 'running'`, state, c.c, c.n, c.tick)
		if err != nil {
			return expired, err
		}
		if n, _ := res.RowsAffected(); n == 1 && done == 0 {
			at := time.Unix(0, c.tick).UTC()
			if err := s.AddCronResult(ctx, c.c, c.n, &CronResult{ScheduledAt: at, StartedAt: at, CompletedAt: now, Type: CronError, Body: "cron: the member that claimed this run did not record it (it died or hung)"}); err != nil {
				return expired, err
			}
			expired++
		}
	}
	return expired, nil
}

func (s *Store) Heartbeat(ctx context.Context, node, url string) error {
	now := s.now().UnixNano()
	_, err := s.db.ExecContext(ctx, `INSERT INTO cluster_members (node_id, url, started_at, heartbeat_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (node_id) DO UPDATE SET url = excluded.url, heartbeat_at = excluded.heartbeat_at`, node, url, now, now)
	return err
}

func (s *Store) Members(ctx context.Context, since time.Time) ([]types.Member, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT node_id, url, heartbeat_at FROM cluster_members WHERE heartbeat_at >= ? ORDER BY node_id`, since.UnixNano())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []types.Member
	for rows.Next() {
		var m types.Member
		var at int64
		if err := rows.Scan(&m.ID, &m.URL, &at); err != nil {
			return nil, err
		}
		m.LastSeen = time.Unix(0, at).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}
