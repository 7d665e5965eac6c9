// Package errdefs defines the few kinds of error that every webtaskd
// package's errors wrap, as containerd's errdefs does. A package keeps its
// own sentinels and messages; each wraps exactly one kind, and the API maps
// kinds to HTTP statuses in one place (api.classify). It has no
// dependencies beyond the standard library, so clients may link it.
//
// An error made with New or Errorf carries a message written for the
// caller of the API (it is sent as the JSON error's message). Any error
// that wraps no kind is internal: it is logged and the caller sees only
// "internal server error".
package errdefs

import (
	"errors"
	"fmt"
)

// The kinds. Match them with errors.Is (or the Is* helpers).
var (
	// ErrInvalid: the request is malformed or breaks a rule (400).
	ErrInvalid = errors.New("invalid argument")
	// ErrUnauthenticated: no credential, or one that cannot be used (401).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrDenied: the credential does not allow the operation (403).
	ErrDenied = errors.New("permission denied")
	// ErrNotFound: the named thing does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the operation lost a race or contradicts the current state (409).
	ErrConflict = errors.New("conflict")
	// ErrTooLarge: a body, document or value is over its size limit (413).
	ErrTooLarge = errors.New("too large")
	// ErrExhausted: a rate or concurrency limit was reached; retry later (429).
	ErrExhausted = errors.New("resource exhausted")
	// ErrFailed: the webtask itself failed (crash, memory limit, bad code) (500,
	// with a message that says which).
	ErrFailed = errors.New("webtask failed")
	// ErrUpstream: something the daemon fetched on the caller's behalf failed (502).
	ErrUpstream = errors.New("upstream failed")
	// ErrUnavailable: the daemon cannot serve this now; retrying may work (503).
	ErrUnavailable = errors.New("unavailable")
	// ErrDeadline: the operation ran past its time limit (504).
	ErrDeadline = errors.New("deadline exceeded")
	// ErrNoSpace: the daemon's storage is full (507).
	ErrNoSpace = errors.New("insufficient storage")
)

// Error is an error of one kind whose message is meant for the API caller.
type Error struct {
	kind error
	msg  string
}

// New returns an error of the given kind with a caller-facing message.
// kind is one of the kinds above, or a package's sentinel that wraps one
// (itself made with New): errors.Is then matches both, e.g.
//
//	var ErrCronJobNotFound = errdefs.New(errdefs.ErrNotFound, "cron job not found")
//	return errdefs.Errorf(ErrCronJobNotFound, "no cron job `%s`", name)
//
// The caller-facing message of an error chain is that of its first (outer
// most) *Error: context added around it with fmt.Errorf("...: %w") is for
// the log only.
func New(kind error, msg string) *Error { return &Error{kind: kind, msg: msg} }

// Errorf is New with a formatted message. %w is not interpreted: the kind
// is the only error it wraps.
func Errorf(kind error, format string, args ...any) *Error {
	return &Error{kind: kind, msg: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return e.msg }

// Unwrap returns the kind (or the sentinel given to New).
func (e *Error) Unwrap() error { return e.kind }

// Kind returns the kind of err (the first of the kinds above that it
// wraps) or nil when it wraps none.
func Kind(err error) error {
	for _, k := range kinds {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}

var kinds = []error{ErrInvalid, ErrUnauthenticated, ErrDenied, ErrNotFound, ErrConflict,
	ErrTooLarge, ErrExhausted, ErrFailed, ErrUpstream, ErrUnavailable, ErrDeadline, ErrNoSpace}

// IsNotFound and friends are shorthands for errors.Is(err, ErrX).
func IsNotFound(err error) bool    { return errors.Is(err, ErrNotFound) }
func IsInvalid(err error) bool     { return errors.Is(err, ErrInvalid) }
func IsConflict(err error) bool    { return errors.Is(err, ErrConflict) }
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }
