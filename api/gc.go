package api

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
)

// DefaultCodeBlobRetention is how old an unnamed code blob must be before
// POST /api/admin/gc collects it when the request names no age.
const DefaultCodeBlobRetention = 30 * 24 * time.Hour

// CodeCollector removes code blobs (*store.Store): those created before
// cutoff that no stored webtask names.
type CodeCollector interface {
	CollectCodeBlobs(ctx context.Context, cutoff time.Time) (int, error)
}

// gc is POST /api/admin/gc (master only): collect unreferenced code blobs
// now (wtctl gc).
func (s *Server) gc(c echo.Context) error {
	caller, _, err := s.caller(c)
	if err != nil {
		return err
	}
	if err := requireMaster(caller); err != nil {
		return err
	}
	if s.collector == nil {
		return errdefs.New(errdefs.ErrUnavailable, "collection is not available")
	}
	raw, err := s.readBody(c)
	if err != nil {
		return err
	}
	var req types.GCRequest
	if len(raw) > 0 {
		if err := decodeJSON(raw, &req); err != nil {
			return err
		}
	}
	age := DefaultCodeBlobRetention
	if req.OlderThan != "" {
		if age, err = time.ParseDuration(req.OlderThan); err != nil || age < 0 {
			return errdefs.Errorf(errdefs.ErrInvalid, "older_than %q: want a non-negative duration such as 720h", req.OlderThan)
		}
	}
	n, err := s.collector.CollectCodeBlobs(c.Request().Context(), s.now().Add(-age))
	if err != nil {
		return err
	}
	s.log.Info("code blobs collected", "removed", n, "older_than", age.String())
	return c.JSON(http.StatusOK, types.GCResult{OlderThan: age.String(), CodeBlobsRemoved: n})
}
