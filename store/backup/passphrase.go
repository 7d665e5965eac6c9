package backup

import (
	"bytes"
	"fmt"
	"os"
)

// ReadPassphraseFile reads a passphrase file as wtctl backup and webtaskd
// restore both take it: its first line, without the line end.
func ReadPassphraseFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), nil
}
