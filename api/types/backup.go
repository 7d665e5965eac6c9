package types

// BackupRequest is the body of POST /api/admin/backup: the passphrase the
// archive's key is derived from (scrypt), at least 12 bytes.
type BackupRequest struct {
	Passphrase string `json:"passphrase"`
}

// GCRequest is the body of POST /api/admin/gc: code blobs older than
// OlderThan (a Go duration, default "720h") that no stored webtask names
// are removed, and so are module versions whose record is older than
// OlderThan that no stored webtask's wt-node-dependencies names.
type GCRequest struct {
	OlderThan string `json:"older_than,omitempty"`
}

// GCResult is the answer of POST /api/admin/gc.
type GCResult struct {
	OlderThan        string `json:"older_than"`
	CodeBlobsRemoved int    `json:"code_blobs_removed"`
	ModulesRemoved   int    `json:"modules_removed"`
}
