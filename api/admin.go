package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/webtaskd/webtaskd/api/types"
)

// listSandboxes is GET /api/admin/sandboxes (master only).
func (s *Server) listSandboxes(c echo.Context) error {
	if err := s.master(c); err != nil {
		return err
	}
	infos := s.sandboxes.List()
	if infos == nil {
		infos = []types.SandboxInfo{}
	}
	return c.JSON(http.StatusOK, infos)
}

// killSandbox is DELETE /api/admin/sandboxes/{id} (master only): 204, or
// 404 for an unknown id.
func (s *Server) killSandbox(c echo.Context) error {
	if err := s.master(c); err != nil {
		return err
	}
	if err := s.sandboxes.Kill(c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
