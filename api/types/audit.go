package types

import "time"

// AuditEntry is one management action (GET /api/admin/audit, wtctl audit).
type AuditEntry struct {
	ID int64     `json:"id"`
	At time.Time `json:"at"`
	// TokenID is the jti of the token that made the request.
	TokenID string `json:"jti"`
	// Action is the method and route, e.g. "PUT /api/webtask/:container/:name".
	Action string `json:"action"`
	// Target is the request path (never its query), or the revoked jti.
	Target string `json:"target"`
	// Status is the HTTP status answered.
	Status int `json:"status"`
}
