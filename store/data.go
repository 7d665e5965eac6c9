package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// MaxDataBytes caps one webtask's stored document (its JSON text): 500 KB,
// the hosted service's limit.
const MaxDataBytes = 500 << 10

// ErrDataConflict: PutData's expected etag is not the stored one. The error
// is a *DataConflictError carrying the current document.
var ErrDataConflict = errdefs.New(errdefs.ErrConflict, "storage conflict: the data was changed since it was read")

// ErrDataTooLarge: the document exceeds MaxDataBytes.
var ErrDataTooLarge = errdefs.New(errdefs.ErrTooLarge, "storage document exceeds 500 KB")

// ErrDataInvalid: the document is not valid JSON.
var ErrDataInvalid = errdefs.New(errdefs.ErrInvalid, "storage document is not valid JSON")

// Data is a webtask's stored document.
type Data struct {
	// Doc is the JSON text of the document; "" when nothing is stored
	// (never written, or cleared by storing null).
	Doc string
	// Etag counts the writes of this webtask's document: 0 when it was
	// never written, then 1, 2, ... It survives clearing, so a reader that
	// saw an older state can never match again.
	Etag int64
}

// DataConflictError is returned (wrapping ErrDataConflict) when the
// expected etag does not match; Current is what is stored now.
type DataConflictError struct{ Current Data }

func (e *DataConflictError) Error() string { return ErrDataConflict.Error() }
func (e *DataConflictError) Unwrap() error { return ErrDataConflict }

// PutDataOptions say what PutData expects to overwrite.
type PutDataOptions struct {
	// Force overwrites whatever is stored (ExpectEtag is ignored).
	Force bool
	// ExpectEtag is the etag the caller read (0: expects nothing stored).
	ExpectEtag int64
}

// GetData returns the stored document of webtask container/name, or an
// error wrapping ErrNotFound when the webtask does not exist.
func (s *Store) GetData(ctx context.Context, container, name string) (Data, error) {
	return readData(ctx, s.db, "get", container, name)
}

// rowQuerier is what readData reads through: *sql.DB or *sql.Tx.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readData reads the document of webtask container/name through q; verb
// ("get", "put") names the operation in errors. No webtask: an error
// wrapping ErrWebtaskNotFound.
func readData(ctx context.Context, q rowQuerier, verb, container, name string) (Data, error) {
	var doc, etag sql.NullString
	// The LEFT JOIN tells "no webtask" (no row) from "no data" (NULLs).
	err := q.QueryRowContext(ctx, `SELECT d.data, d.etag FROM webtasks w
		LEFT JOIN webtask_data d ON d.container = w.container AND d.name = w.name
		WHERE w.container = ? AND w.name = ?`, container, name).Scan(&doc, &etag)
	if errors.Is(err, sql.ErrNoRows) {
		return Data{}, fmt.Errorf("store: webtask %s/%s: %w", container, name, ErrWebtaskNotFound)
	}
	if err != nil {
		return Data{}, fmt.Errorf("store: %s data of %s/%s: %w", verb, container, name, err)
	}
	return dataFromRow(doc, etag)
}

func dataFromRow(doc, etag sql.NullString) (Data, error) {
	if !etag.Valid {
		return Data{}, nil
	}
	n, err := strconv.ParseInt(etag.String, 10, 64)
	if err != nil {
		return Data{}, fmt.Errorf("store: stored etag %q is not a counter", etag.String)
	}
	d := Data{Etag: n}
	if doc.Valid && doc.String != "null" {
		d.Doc = doc.String
	}
	return d, nil
}

// PutData stores doc (JSON text; "" or "null" clears the document) as the
// document of webtask container/name when o.Force is set or the stored
// etag equals o.ExpectEtag, atomically (compare and set in one
// transaction), and returns the new state. Errors: ErrNotFound (no such
// webtask), *DataConflictError (ErrDataConflict) with the current
// document, ErrDataTooLarge, ErrDataInvalid.
func (s *Store) PutData(ctx context.Context, container, name, doc string, o PutDataOptions) (_ Data, err error) {
	defer s.writeDone(&err)
	if len(doc) > MaxDataBytes {
		return Data{}, fmt.Errorf("store: data of %s/%s is %d bytes, more than %d: %w", container, name, len(doc), MaxDataBytes, ErrDataTooLarge)
	}
	if doc == "" {
		doc = "null"
	}
	if !json.Valid([]byte(doc)) {
		return Data{}, fmt.Errorf("store: data of %s/%s: %w", container, name, ErrDataInvalid)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	// SQLite: BEGIN IMMEDIATE (_txlock) makes the read below the write
	// lock's; PostgreSQL: the read locks the webtask's row.
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Data{}, fmt.Errorf("store: put data of %s/%s: %w", container, name, err)
	}
	defer tx.Rollback()
	if lock := s.db.d.lockRowsOf("webtasks"); lock != "" {
		// Its own statement: the read below then takes its snapshot
		// after the lock is granted (READ COMMITTED), so it sees the
		// document the previous holder committed.
		if _, err := tx.ExecContext(ctx, `SELECT 1 FROM webtasks WHERE container = ? AND name = ?`+lock, container, name); err != nil {
			return Data{}, fmt.Errorf("store: put data of %s/%s: %w", container, name, err)
		}
	}
	cur, err := readData(ctx, tx, "put", container, name)
	if err != nil {
		return Data{}, err
	}
	if !o.Force && cur.Etag != o.ExpectEtag {
		return Data{}, fmt.Errorf("store: put data of %s/%s: %w", container, name, &DataConflictError{Current: cur})
	}
	quotas, err := s.quotasOf(ctx, tx, container)
	if err != nil {
		return Data{}, fmt.Errorf("store: put data of %s/%s: quotas: %w", container, name, err)
	}
	if err := checkStorageQuota(ctx, s.db.d, tx, container, name, doc, quotas.MaxStorageBytes); err != nil {
		return Data{}, err
	}
	next := Data{Etag: cur.Etag + 1}
	if doc != "null" {
		next.Doc = doc
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO webtask_data (container, name, data, etag, updated_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (container, name) DO UPDATE SET data = excluded.data, etag = excluded.etag,
			updated_at = excluded.updated_at`,
		container, name, doc, strconv.FormatInt(next.Etag, 10), s.now().UTC().UnixNano()); err != nil {
		return Data{}, fmt.Errorf("store: put data of %s/%s: %w", container, name, err)
	}
	if err := tx.Commit(); err != nil {
		return Data{}, fmt.Errorf("store: put data of %s/%s: %w", container, name, err)
	}
	return next, nil
}
