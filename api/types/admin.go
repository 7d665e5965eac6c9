package types

import "time"

// Webtask is a stored webtask as the API shows it (PUT/GET
// /api/webtask/{c}/{n} and the lists). Secrets and Code are filled only on
// request (?decrypt=true, ?fetch_code=true).
type Webtask struct {
	Container  string            `json:"container"`
	Name       string            `json:"name"`
	Token      string            `json:"token"`
	Meta       map[string]string `json:"meta"`
	WebtaskURL string            `json:"webtask_url"`
	Secrets    map[string]any    `json:"secrets,omitempty"`
	Code       *string           `json:"code,omitempty"`
}

// KeyInfo describes a key set without its key material (GET
// /api/admin/keys, POST /api/admin/keys/rotate).
type KeyInfo struct {
	ID        string    `json:"kid"`
	CreatedAt time.Time `json:"created_at"`
	Current   bool      `json:"current"`
	Retired   bool      `json:"retired"`
}

// KeyRetirement is the answer of POST /api/admin/keys/{kid}/retire: how
// many webtasks had their secrets re-sealed and their stored token
// re-signed under the current key set before kid was retired.
type KeyRetirement struct {
	Kid      string `json:"kid"`
	Retired  bool   `json:"retired"`
	Resealed int    `json:"resealed"`
	Resigned int    `json:"resigned"`
}
