package types

import "time"

// Member is one daemon of a cluster (GET /api/cluster/members): its node
// id, the URL the other members and wtctl reach it at, and its last
// heartbeat.
type Member struct {
	ID       string    `json:"id"`
	URL      string    `json:"url"`
	LastSeen time.Time `json:"last_seen"`
	// Self marks the member that answered.
	Self bool `json:"self,omitempty"`
}
