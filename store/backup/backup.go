// Package backup is webtaskd's backup archive: a tar of named files (the
// database snapshot, the key sets, the master token, a manifest) encrypted
// as one AES-256-GCM message under a key derived from a passphrase with
// scrypt. Nothing of the content is readable without the passphrase; the
// header (format, KDF parameters, salt, nonce) is authenticated with it.
//
// Layout: Magic, then one line of JSON (Header), then the ciphertext (tar,
// sealed with the header's nonce and Magic+header line as associated data).
// The whole archive is built and opened in memory.
package backup

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"golang.org/x/crypto/scrypt"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// Magic starts every archive (it names the format version).
const Magic = "WEBTASKD-BACKUP-1\n"

// MinPassphraseBytes is the shortest passphrase Seal accepts.
const MinPassphraseBytes = 12

// scrypt parameters of new archives (about 32 MiB and a tenth of a second).
const (
	scryptN  = 1 << 15
	scryptR  = 8
	scryptP  = 1
	saltLen  = 16
	keyLen   = 32
	maxHdrSz = 4096
)

// Errors of Open.
var (
	// ErrNotArchive: the input is not a webtaskd backup archive.
	ErrNotArchive = errdefs.New(errdefs.ErrInvalid, "not a webtaskd backup archive")
	// ErrPassphrase: the passphrase does not open the archive (or the
	// archive was altered).
	ErrPassphrase = errdefs.New(errdefs.ErrDenied, "wrong passphrase or altered archive")
	// ErrShortPassphrase: Seal refuses passphrases under MinPassphraseBytes.
	ErrShortPassphrase = errdefs.Errorf(errdefs.ErrInvalid, "the backup passphrase must be at least %d bytes", MinPassphraseBytes)
)

// ErrSharedStore: the daemon's store is a cluster's PostgreSQL database,
// which has no single-host archive: it is backed up with pg_dump, together
// with the key-encryption key file.
var ErrSharedStore = errdefs.New(errdefs.ErrInvalid,
	"this daemon's store is a cluster's PostgreSQL database, which webtaskd does not archive: back it up with pg_dump "+
		"and keep the key-encryption key file (--key-encryption-key-file) with the dump, in a separate safe place "+
		"(the key sets and the master token in the dump are wrapped under it: a dump alone opens nothing); "+
		"wtctl backup archives single-host (SQLite) daemons")

// Header is the archive's clear, authenticated header.
type Header struct {
	KDF   string `json:"kdf"` // "scrypt"
	N     int    `json:"n"`
	R     int    `json:"r"`
	P     int    `json:"p"`
	Salt  []byte `json:"salt"`
	Nonce []byte `json:"nonce"`
}

// File is one file of an archive: a slash-separated relative Name.
type File struct {
	Name string
	Mode int64
	Data []byte
}

// Seal writes files to w as an archive encrypted under passphrase.
func Seal(w io.Writer, passphrase []byte, files []File) error {
	if len(passphrase) < MinPassphraseBytes {
		return ErrShortPassphrase
	}
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	for _, f := range files {
		if err := checkName(f.Name); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.Name, Mode: f.Mode, Size: int64(len(f.Data)), ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	h := Header{KDF: "scrypt", N: scryptN, R: scryptR, P: scryptP, Salt: make([]byte, saltLen)}
	if _, err := rand.Read(h.Salt); err != nil {
		return err
	}
	aead, err := newAEAD(passphrase, h)
	if err != nil {
		return err
	}
	h.Nonce = make([]byte, aead.NonceSize())
	if _, err := rand.Read(h.Nonce); err != nil {
		return err
	}
	line, err := json.Marshal(h)
	if err != nil {
		return err
	}
	ad := append([]byte(Magic), append(line, '\n')...)
	ct := aead.Seal(nil, h.Nonce, plain.Bytes(), ad)
	if _, err := w.Write(ad); err != nil {
		return err
	}
	_, err = w.Write(ct)
	return err
}

// Open reads an archive from r and returns its files. Errors: ErrNotArchive,
// ErrPassphrase.
func Open(r io.Reader, passphrase []byte) ([]File, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != Magic {
		return nil, ErrNotArchive
	}
	line, err := br.ReadSlice('\n')
	if err != nil || len(line) > maxHdrSz {
		return nil, ErrNotArchive
	}
	line = append([]byte(nil), line...)
	var h Header
	if err := json.Unmarshal(line, &h); err != nil || h.KDF != "scrypt" || len(h.Salt) < saltLen ||
		h.N < 2 || h.N > 1<<22 || h.R < 1 || h.R > 32 || h.P < 1 || h.P > 16 {
		return nil, ErrNotArchive
	}
	aead, err := newAEAD(passphrase, h)
	if err != nil {
		return nil, err
	}
	if len(h.Nonce) != aead.NonceSize() {
		return nil, ErrNotArchive
	}
	ct, err := io.ReadAll(br)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, h.Nonce, ct, append([]byte(Magic), line...))
	if err != nil {
		return nil, ErrPassphrase
	}
	var files []File
	tr := tar.NewReader(bytes.NewReader(plain))
	for {
		th, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotArchive, err)
		}
		if th.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("%w: %q is not a regular file", ErrNotArchive, th.Name)
		}
		if err := checkName(th.Name); err != nil {
			return nil, err
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Name: th.Name, Mode: th.Mode, Data: data})
	}
}

func newAEAD(passphrase []byte, h Header) (cipher.AEAD, error) {
	key, err := scrypt.Key(passphrase, h.Salt, h.N, h.R, h.P, keyLen)
	if err != nil {
		return nil, fmt.Errorf("backup: key derivation: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// checkName refuses names that could leave the directory they are
// restored into.
func checkName(name string) error {
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "\\") {
		return fmt.Errorf("%w: bad file name %q", ErrNotArchive, name)
	}
	return nil
}
