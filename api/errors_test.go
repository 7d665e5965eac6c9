package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/sandbox/agent"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/token"
)

// TestClassify: every kind has its status; the message is the outermost
// *errdefs.Error's (context wrapped around it is never sent); an error of
// no kind is a 500 that says nothing.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		msg    string
	}{
		{errdefs.New(errdefs.ErrInvalid, "m"), 400, "m"},
		{errdefs.New(errdefs.ErrUnauthenticated, "m"), 401, "m"},
		{errdefs.New(errdefs.ErrDenied, "m"), 403, "m"},
		{errdefs.New(errdefs.ErrNotFound, "m"), 404, "m"},
		{errdefs.New(errdefs.ErrConflict, "m"), 409, "m"},
		{errdefs.New(errdefs.ErrTooLarge, "m"), 413, "m"},
		{errdefs.New(errdefs.ErrExhausted, "m"), 429, "m"},
		{errdefs.New(errdefs.ErrFailed, "m"), 500, "m"},
		{errdefs.New(errdefs.ErrUpstream, "m"), 502, "m"},
		{errdefs.New(errdefs.ErrUnavailable, "m"), 503, "m"},
		{errdefs.New(errdefs.ErrDeadline, "m"), 504, "m"},
		{errdefs.New(errdefs.ErrNoSpace, "m"), 507, "m"},
		{fmt.Errorf("store: webtask c/n (secret path /x): %w", store.ErrWebtaskNotFound), 404, "webtask not found"},
		{fmt.Errorf("verify: %w", token.ErrExpired), 403, "expired JWT token"},
		{fmt.Errorf("bare: %w", errdefs.ErrConflict), 409, "conflict"},
		{&RateLimitError{RetryAfter: time.Second, Claim: "ls", Limit: 3, Unit: "second"}, 429,
			"rate limit exceeded: the container allows 3 requests per second (`ls`)"},
		{&http.MaxBytesError{Limit: 1}, 413, "request body too large"},
		{fmt.Errorf("disk at /var/secret on fire"), 500, "internal server error"},
		{context.Canceled, 499, "request canceled"},
	} {
		status, msg, _, _ := classify(tc.err)
		if status != tc.status || msg != tc.msg {
			t.Errorf("classify(%v) = %d %q, want %d %q", tc.err, status, msg, tc.status, tc.msg)
		}
	}
}

// TestCallbackErrors: the agent client's refusals and the handlers' own
// failures reach the webtask with the API's statuses and messages.
func TestCallbackErrors(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tc := range []struct {
		refused error
		code    int
		msg     string
	}{
		{agent.ErrStorageNotRunning, 400, "storage is only available while the webtask has not responded"},
		{agent.ErrStorageBusy, 503, "too many storage calls in flight"},
	} {
		r := e.srv.Storage(context.Background(), agent.StorageOp{Container: "test", Name: "n", Refused: tc.refused})
		if r.Code != tc.code || r.Message != tc.msg {
			t.Errorf("storage refused with %v: %+v", tc.refused, r)
		}
	}
	for _, tc := range []struct {
		refused error
		code    int
		msg     string
	}{
		{agent.ErrTokenNotRunning, 400, "tokens can only be created while the webtask has not responded"},
		{agent.ErrTokenOptions, 400, "the token options must be an object"},
		{agent.ErrTokenBusy, 503, "too many calls in flight"},
	} {
		r := e.srv.CreateToken(context.Background(), agent.TokenOp{Container: "test", Authority: e.tenant, Refused: tc.refused})
		if r.Code != tc.code || r.Message != tc.msg || r.Token != "" {
			t.Errorf("token refused with %v: %+v", tc.refused, r)
		}
	}
	if r := e.srv.Storage(context.Background(), agent.StorageOp{Container: "test"}); r.Code != 400 ||
		r.Message != "storage is only available to named webtasks" {
		t.Errorf("unnamed storage: %+v", r)
	}
	if r := e.srv.Storage(context.Background(), agent.StorageOp{Container: "test", Name: "missing"}); r.Code != 404 ||
		r.Message != "webtask not found" {
		t.Errorf("storage of a missing webtask: %+v", r)
	}
	if r := TokenError(nil, agent.TokenOp{}, errors.New("db down")); r.Code != 500 || r.Message != "internal server error" {
		t.Errorf("internal: %+v", r)
	}
}
