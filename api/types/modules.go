package types

import "time"

// The states of a provisioned npm module (reference §1.1).
const (
	ModuleQueued    = "queued"
	ModuleAvailable = "available"
	ModuleFailed    = "failed"
)

// ModuleSpec names one exact version of an npm package.
type ModuleSpec struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// String is name@version.
func (m ModuleSpec) String() string { return m.Name + "@" + m.Version }

// Module is the wire shape of a provisioned module: the answers of
// POST /api/env/node/modules and GET /api/env/node/modules/{name}.
type Module struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// State is ModuleQueued, ModuleAvailable or ModuleFailed.
	State string `json:"state"`
	// Error is npm's message when State is ModuleFailed.
	Error string `json:"error,omitempty"`
	// SizeBytes is the installed tree's size once available.
	SizeBytes int64     `json:"size_bytes,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ModulesRequest is the body of POST /api/env/node/modules.
type ModulesRequest struct {
	Modules []ModuleSpec `json:"modules"`
}
