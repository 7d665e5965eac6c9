// Package store persists webtasks in SQLite (mattn/go-sqlite3: WAL, foreign
// keys; one host, the default) or in PostgreSQL (pgx/v5; shared by the
// daemons of a cluster), each dialect with its own embedded numbered
// migrations, an injectable clock. Secrets are sealed with the keyring's
// current sealing key before they reach the database. What is common
// (sealing, caching, validation, quotas) is shared; the SQL differs only
// where it must (dialect.go).
package store

import (
	"errors"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// ErrNotFound is the kind every not-found error of the store wraps; the
// errors themselves say what was not found, for the API's caller.
var ErrNotFound = errdefs.ErrNotFound

// The store's not-found errors (match them, or ErrNotFound, with errors.Is).
var (
	ErrWebtaskNotFound = errdefs.New(ErrNotFound, "webtask not found")
	ErrCronJobNotFound = errdefs.New(ErrNotFound, "cron job not found")
	ErrLimitsNotFound  = errdefs.New(ErrNotFound, "no limit overrides")
	ErrCodeNotFound    = errdefs.New(ErrNotFound, "the code named by the url claim is not stored")
)

// Internal errors (of no kind: the API answers 500 and logs them).

// ErrMigration: the schema could not be brought up to date (or the database
// is newer than this binary).
var ErrMigration = errors.New("schema migration failed")

// ErrClosed: the store has been closed.
var ErrClosed = errors.New("store closed")

// Webtask is one named webtask. A *Webtask returned by the store is shared
// with its read cache: callers must treat it (including its maps) as
// read-only; copy it (Clone) before changing anything. In a stored copy
// Meta, Params and Secrets are never nil.
type Webtask struct {
	Container string
	Name      string
	// Code is the stored source; empty when CodeURL names remote code.
	Code string
	// CodeHash is the hex sha256 of Code (set by the store).
	CodeHash string
	// CodeURL is the "url" claim: webtask://{container}/{name} for stored
	// code, or an http(s) URL fetched at run time.
	CodeURL string
	Meta    map[string]string
	// Params is pctx; Secrets is ectx, plain in memory, sealed at rest.
	Params  map[string]any
	Secrets map[string]any
	// PB is the parse-body claim: nil when the claim was absent (parse on
	// arity, token.ParseBody), else 0, 1 or 2. MB is the merge-body claim.
	PB *int
	MB int
	// Token is the JWT issued for this webtask (its claims carry ectx
	// sealed, never in plain text).
	Token     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ListOptions filters ListWebtasks.
type ListOptions struct {
	// Container limits the list to one container; empty lists all.
	Container string
	// Meta keeps webtasks holding every given key:value pair.
	Meta   map[string]string
	Offset int
	// Limit caps the page; 0 means 100.
	Limit int
}
