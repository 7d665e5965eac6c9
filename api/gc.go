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
// cutoff that no stored webtask names. Its MetaValues tell module
// collection which modules stored webtasks declare.
type CodeCollector interface {
	CollectCodeBlobs(ctx context.Context, cutoff time.Time) (int, error)
	MetaLister
}

// gc is POST /api/admin/gc (master only): collect now the unreferenced
// code blobs and, when modules are provisioned here, the unused module
// versions, both older than the age (wtctl gc).
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
	ctx, cutoff := c.Request().Context(), s.now().Add(-age)
	n, err := s.collector.CollectCodeBlobs(ctx, cutoff)
	if err != nil {
		return err
	}
	res := types.GCResult{OlderThan: age.String(), CodeBlobsRemoved: n}
	if s.moduleCollector != nil {
		if res.ModulesRemoved, err = CollectModules(ctx, s.collector, s.moduleCollector, cutoff); err != nil {
			return err
		}
	}
	s.log.Info("garbage collected", "code_blobs_removed", n, "modules_removed", res.ModulesRemoved, "older_than", age.String())
	return c.JSON(http.StatusOK, res)
}
