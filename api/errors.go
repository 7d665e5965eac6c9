package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// Exact messages of the reference (§1.0).
const (
	msgUnexpectedAuth = "rejecting request with unexpected Authorization header"
	msgNoAuth         = "rejecting request without Authorization header or key URL query parameter"
	msgAdminOnly      = "insufficient permissions to call administrative API"
	msgNoWebtask      = "unable to resolve jtn to webtask token"
	msgInternal       = "internal server error"
)

// errNoWebtaskToken is the reference's 404 for a run of a webtask that is
// not stored (the store's own message, "webtask not found", is for the
// management routes).
var errNoWebtaskToken = errdefs.New(errdefs.ErrNotFound, msgNoWebtask)

func errForeignTenant(container string) error {
	return errdefs.Errorf(errdefs.ErrDenied, "not authorized to perform operation on tenant `%s`", container)
}

// kindStatus is the HTTP status of each error kind.
func kindStatus(kind error) int {
	switch kind {
	case errdefs.ErrInvalid:
		return http.StatusBadRequest
	case errdefs.ErrUnauthenticated:
		return http.StatusUnauthorized
	case errdefs.ErrDenied:
		return http.StatusForbidden
	case errdefs.ErrNotFound:
		return http.StatusNotFound
	case errdefs.ErrConflict:
		return http.StatusConflict
	case errdefs.ErrTooLarge:
		return http.StatusRequestEntityTooLarge
	case errdefs.ErrExhausted:
		return http.StatusTooManyRequests
	case errdefs.ErrUpstream:
		return http.StatusBadGateway
	case errdefs.ErrUnavailable:
		return http.StatusServiceUnavailable
	case errdefs.ErrDeadline:
		return http.StatusGatewayTimeout
	case errdefs.ErrNoSpace:
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError // ErrFailed
}

// classify is the one place where errors become HTTP statuses: the kind
// (errdefs) an error wraps gives the status, the message of its first
// *errdefs.Error is what the client reads. An error of no kind is internal:
// 500 "internal server error", logged. log says whether (and level how
// loudly) the server logs it.
func classify(err error) (status int, msg string, level slog.Level, log bool) {
	var de *errdefs.Error
	if errors.As(err, &de) {
		status = kindStatus(errdefs.Kind(de))
		if status == http.StatusInsufficientStorage {
			// The store logs when the disk fills up and when it has
			// space again; not every refused request.
			return status, de.Error(), slog.LevelDebug, true
		}
		if status >= 500 {
			return status, de.Error(), slog.LevelWarn, true
		}
		return status, de.Error(), 0, false
	}
	if kind := errdefs.Kind(err); kind != nil {
		// A bare kind: its own text is the message.
		status = kindStatus(kind)
		return status, kind.Error(), slog.LevelWarn, status >= 500
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
	return http.StatusInternalServerError, msgInternal, slog.LevelError, true
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
		err = c.JSON(status, types.ErrorBody{Code: status, Message: msg, ReqID: id})
	}
	if err != nil {
		s.log.Debug("writing error response", "req_id", id, "err", err)
	}
}

// storageResult and tokenResult answer failed callbacks with the server's
// logger.
func (s *Server) storageResult(op agent.StorageOp, err error) agent.StorageResult {
	return StorageError(s.log, op, err)
}

func (s *Server) tokenResult(op agent.TokenOp, err error) agent.TokenResult {
	return TokenError(s.log, op, err)
}

// StorageError is the answer to a failed ctx.storage call of a running
// webtask: err.code and err.message as the HTTP API would answer err.
// Failures of no kind are logged with the call's identity.
func StorageError(log *slog.Logger, op agent.StorageOp, err error) agent.StorageResult {
	code, msg := callbackError(log, "storage call failed", op.ReqID, op.Container, op.Name, err)
	return agent.StorageResult{Code: code, Message: msg}
}

// TokenError is the answer to a failed ctx.create_token call of a running
// webtask, with the statuses and messages of POST /api/tokens/issue.
func TokenError(log *slog.Logger, op agent.TokenOp, err error) agent.TokenResult {
	code, msg := callbackError(log, "create_token failed", op.ReqID, op.Container, op.Name, err)
	return agent.TokenResult{Code: code, Message: msg}
}

func callbackError(log *slog.Logger, what, reqID, container, name string, err error) (int, string) {
	status, msg, level, ok := classify(err)
	if ok {
		if log == nil {
			log = slog.Default()
		}
		log.Log(context.Background(), level, what,
			"req_id", reqID, "container", container, "name", name, "status", status, "err", err)
	}
	return status, msg
}
