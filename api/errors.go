package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/sandbox"
	"github.com/webtaskd/webtaskd/sandbox/agent"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/token"
)

// Kinds of API errors; every *Error unwraps to one of them and this file
// alone maps kinds (and the errors of the packages below) to HTTP statuses.
var (
	ErrBadRequest  = errors.New("bad request")            // 400
	ErrForbidden   = errors.New("forbidden")              // 403
	ErrNotFound    = errors.New("not found")              // 404
	ErrConflict    = errors.New("conflict")               // 409
	ErrTooLarge    = errors.New("request body too large") // 413
	ErrRateLimited = errors.New("rate limit exceeded")    // 429 (with Retry-After: *RateLimitError)
	ErrBadGateway  = errors.New("upstream fetch failed")  // 502
	ErrUnavailable = errors.New("service unavailable")    // 503
	ErrInternal    = errors.New("internal server error")  // 500
)

// Error is an API error whose Message is safe to send to the client.
type Error struct {
	Kind    error
	Message string
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Kind }

func apiErr(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Exact messages of the reference (§1.0).
const (
	msgUnexpectedAuth = "rejecting request with unexpected Authorization header"
	msgNoAuth         = "rejecting request without Authorization header or key URL query parameter"
	msgAdminOnly      = "insufficient permissions to call administrative API"
	msgNoWebtask      = "unable to resolve jtn to webtask token"
)

func errForeignTenant(container string) *Error {
	return apiErr(ErrForbidden, "not authorized to perform operation on tenant `%s`", container)
}

var kindStatus = []struct {
	kind   error
	status int
}{
	{ErrBadRequest, http.StatusBadRequest},
	{ErrForbidden, http.StatusForbidden},
	{ErrNotFound, http.StatusNotFound},
	{ErrConflict, http.StatusConflict},
	{ErrTooLarge, http.StatusRequestEntityTooLarge},
	{ErrBadGateway, http.StatusBadGateway},
	{ErrUnavailable, http.StatusServiceUnavailable},
	{ErrInternal, http.StatusInternalServerError},
}

// Sentinels whose own message is the client message.
var sentinelStatus = []struct {
	err    error
	status int
}{
	{token.ErrMalformed, http.StatusForbidden},
	{token.ErrUntrustedKey, http.StatusForbidden},
	{token.ErrBadSignature, http.StatusForbidden},
	{token.ErrNotYetValid, http.StatusForbidden},
	{token.ErrExpired, http.StatusForbidden},
	{token.ErrRevoked, http.StatusForbidden},
	// Sandbox failures: the message says which limit or failure. A timeout
	// is 504 (the webtask, not the daemon, took too long); memory and
	// crashes are 500; a sandbox that cannot start or was recycled under
	// the call is 503 (retryable).
	{sandbox.ErrTimeout, http.StatusGatewayTimeout},
	{sandbox.ErrOOM, http.StatusInternalServerError},
	{sandbox.ErrCrashed, http.StatusInternalServerError},
	{sandbox.ErrStart, http.StatusServiceUnavailable},
	{sandbox.ErrDestroyed, http.StatusServiceUnavailable},
	{sandbox.ErrClosed, http.StatusServiceUnavailable},
	{sandbox.ErrNotFound, http.StatusNotFound},
	// Fleet pressure: the container's concurrency queue is full (429,
	// retry later) or no sandbox can be evicted (503).
	{sandbox.ErrBusy, http.StatusTooManyRequests},
	{sandbox.ErrCapacity, http.StatusServiceUnavailable},
	// Per-webtask storage (HTTP /data and ctx.storage alike).
	{store.ErrDataConflict, http.StatusConflict},
	{store.ErrDataTooLarge, http.StatusRequestEntityTooLarge},
	{store.ErrDataInvalid, http.StatusBadRequest},
}

// classify maps err to an HTTP status and a client-safe message. logLevel
// is how loudly the server should log it (-1: not at all).
func classify(err error) (status int, msg string, level slog.Level, log bool) {
	var ae *Error
	if errors.As(err, &ae) {
		for _, ks := range kindStatus {
			if errors.Is(ae.Kind, ks.kind) {
				if ks.status >= 500 {
					return ks.status, ae.Message, slog.LevelWarn, true
				}
				return ks.status, ae.Message, 0, false
			}
		}
	}
	var rl *RateLimitError
	if errors.As(err, &rl) {
		return http.StatusTooManyRequests, rl.Error(), 0, false
	}
	var ce *token.ClaimError
	if errors.As(err, &ce) {
		if errors.Is(ce, token.ErrNotAllowed) {
			return http.StatusForbidden, ce.Message, 0, false
		}
		return http.StatusBadRequest, ce.Message, 0, false
	}
	for _, ss := range sentinelStatus {
		if errors.Is(err, ss.err) {
			return ss.status, ss.err.Error(), slog.LevelWarn, ss.status >= 500
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return http.StatusNotFound, "webtask not found", 0, false
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, "request body too large", 0, false
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		m, ok := he.Message.(string)
		if !ok {
			m = http.StatusText(he.Code)
		}
		return he.Code, m, slog.LevelError, he.Code >= 500
	}
	if errors.Is(err, context.Canceled) {
		// The client went away; nobody reads the answer.
		return 499, "request canceled", slog.LevelDebug, true
	}
	return http.StatusInternalServerError, "internal server error", slog.LevelError, true
}

// errorBody is the JSON error shape of the API.
type errorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	ReqID   string `json:"req_id"`
}

// handleError is echo's HTTPErrorHandler: every error becomes the JSON
// error body, internal details go to the log only.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg, level, log := classify(err)
	id := reqID(c)
	var rl *RateLimitError
	if errors.As(err, &rl) {
		c.Response().Header().Set("Retry-After", rl.retryAfterSeconds())
	}
	if log {
		s.log.Log(c.Request().Context(), level, "request failed",
			"req_id", id, "method", c.Request().Method, "path", c.Request().URL.Path, "status", status, "err", err)
	}
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(status)
	} else {
		err = c.JSON(status, errorBody{Code: status, Message: msg, ReqID: id})
	}
	if err != nil {
		s.log.Debug("writing error response", "req_id", id, "err", err)
	}
}

// storageResult maps a storage failure of a running webtask to the code it
// sees as err.code, with the same statuses and messages as the HTTP API.
func (s *Server) storageResult(op agent.StorageOp, err error) agent.StorageResult {
	status, msg, level, log := classify(err)
	if log {
		s.log.Log(context.Background(), level, "storage call failed",
			"req_id", op.ReqID, "container", op.Container, "name", op.Name, "status", status, "err", err)
	}
	return agent.StorageResult{Code: status, Message: msg}
}

// tokenResult maps a failed ctx.create_token of a running webtask to the
// code it sees as err.code, with the statuses and messages of
// POST /api/tokens/issue.
func (s *Server) tokenResult(op agent.TokenOp, err error) agent.TokenResult {
	status, msg, level, log := classify(err)
	if log {
		s.log.Log(context.Background(), level, "create_token failed",
			"req_id", op.ReqID, "container", op.Container, "name", op.Name, "status", status, "err", err)
	}
	return agent.TokenResult{Code: status, Message: msg}
}
