package types

import "time"

// Member is one daemon of a cluster sharing a PostgreSQL store
// (GET /api/admin/cluster/members, wtctl's fan-out).
type Member struct {
	// NodeID is the daemon's --node-id.
	NodeID string `json:"node_id"`
	// URL is where its peers reach it (--advertise-url).
	URL string `json:"url"`
	// StartedAt is when it (last) started; HeartbeatAt its last heartbeat.
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
}
