package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/store/token"
)

// AuditStore keeps the audit log (*store.Store).
type AuditStore interface {
	AddAudit(ctx context.Context, e types.AuditEntry) error
	ListAudit(ctx context.Context, limit int, beforeID int64) ([]types.AuditEntry, error)
}

// Keys of the echo context: the authenticated caller (set by caller) and
// an audit target a handler names (a revoked jti).
const (
	ctxCaller      = "wt.caller"
	ctxAuditTarget = "wt.audit_target"
)

// audited reports whether a request is a management action: a write to
// any /api/ route but running webtasks.
func audited(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	// Runs and syntax checks (the editor's, as the user types) change
	// nothing: they are not management actions.
	return strings.HasPrefix(r.URL.Path, "/api/") && !strings.HasPrefix(r.URL.Path, "/api/run/") &&
		!strings.HasPrefix(r.URL.Path, "/api/syntax/")
}

// auditLog is the middleware that records every management action whose
// caller authenticated: time, token id, action, target, status. A failure
// to record is logged; it never changes the answer.
func (s *Server) auditLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if s.audit == nil || !audited(c.Request()) {
			return err
		}
		claims, _ := c.Get(ctxCaller).(*token.Claims)
		if claims == nil {
			return err
		}
		status := c.Response().Status
		if err != nil {
			status, _, _, _ = classify(err)
		}
		target, _ := c.Get(ctxAuditTarget).(string)
		if target == "" {
			target = c.Request().URL.Path // never the query: ?key= carries tokens
		}
		e := types.AuditEntry{TokenID: claims.Jti, Action: c.Request().Method + " " + c.Path(), Target: target, Status: status}
		if aerr := s.audit.AddAudit(context.WithoutCancel(c.Request().Context()), e); aerr != nil {
			s.log.Error("audit log write failed", "req_id", reqID(c), "action", e.Action, "err", aerr)
		}
		return err
	}
}

// listAudit is GET /api/admin/audit?limit=N&before=ID (master only): the
// newest entries first.
func (s *Server) listAudit(c echo.Context) error {
	caller, _, err := s.caller(c)
	if err != nil {
		return err
	}
	if err := requireMaster(caller); err != nil {
		return err
	}
	if s.audit == nil {
		return errdefs.New(errdefs.ErrUnavailable, "the audit log is not available")
	}
	limit, before := 100, int64(0)
	if v := c.QueryParam("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			return errdefs.New(errdefs.ErrInvalid, "limit: want 1 to 1000")
		}
	}
	if v := c.QueryParam("before"); v != "" {
		if before, err = strconv.ParseInt(v, 10, 64); err != nil || before < 1 {
			return errdefs.New(errdefs.ErrInvalid, "before: want an entry id")
		}
	}
	entries, err := s.audit.ListAudit(c.Request().Context(), limit, before)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, entries)
}
