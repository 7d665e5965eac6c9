package types

// BackupRequest is the body of POST /api/admin/backup: the passphrase the
// archive's key is derived from (scrypt), at least 12 bytes.
type BackupRequest struct {
	Passphrase string `json:"passphrase"`
}
