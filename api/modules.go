package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/store/modules"
)

// Modules provisions npm modules on this host (*modules.Manager). Every
// method validates names and versions (errdefs.ErrInvalid).
type Modules interface {
	// Request queues the installs of specs (at most 50) that are not
	// available, retrying failed ones; reset reinstalls every one. It
	// answers each module's state without waiting for npm.
	Request(ctx context.Context, specs []types.ModuleSpec, reset bool) ([]types.Module, error)
	// Versions lists the known versions of name.
	Versions(ctx context.Context, name string) ([]types.Module, error)
	// List lists every module record.
	List(ctx context.Context) ([]types.Module, error)
	// Remove deletes one module's files and record (ErrNotFound,
	// ErrConflict while it installs).
	Remove(ctx context.Context, spec types.ModuleSpec) error
	// State is spec's state on this host ("" when unknown), from memory:
	// it is on the run path of webtasks declaring modules.
	State(spec types.ModuleSpec) string
	// Generation changes whenever any module's state does.
	Generation() uint64
}

// requestModules is POST /api/env/node/modules[?reset=1]: any valid token
// not bound to one webtask may request modules (they are shared and
// read-only; its rate limits apply); reset is for the master token only.
func (s *Server) requestModules(c echo.Context) error {
	caller, _, err := s.caller(c)
	if err != nil {
		return err
	}
	if bound(caller) {
		return errBound
	}
	reset := queryBool(c, "reset")
	if reset {
		if err := requireMaster(caller); err != nil {
			return err
		}
	}
	var body types.ModulesRequest
	if err := s.bindJSON(c, &body); err != nil {
		return err
	}
	if err := modules.ValidateAll(body.Modules); err != nil {
		return err
	}
	// Built-in modules are always available: only the others are
	// installed (an empty request is still the manager's to refuse).
	var install []types.ModuleSpec
	for _, m := range body.Modules {
		if !builtinModules[m.Name] {
			install = append(install, m)
		}
	}
	var installed []types.Module
	if len(install) > 0 || len(body.Modules) == 0 {
		if installed, err = s.modules.Request(c.Request().Context(), install, reset); err != nil {
			return err
		}
	}
	out := make([]types.Module, 0, len(body.Modules))
	for _, m := range body.Modules {
		if builtinModules[m.Name] {
			out = append(out, types.Module{Name: m.Name, Version: m.Version, State: types.ModuleAvailable, UpdatedAt: s.now().UTC()})
			continue
		}
		out = append(out, installed[0])
		installed = installed[1:]
	}
	return c.JSON(http.StatusOK, out)
}

// moduleVersions is GET /api/env/node/modules/{name} (URL-encoded, scoped
// names as @scope%2Fname or @scope/name): no credential, as wt-cli sends it.
func (s *Server) moduleVersions(c echo.Context) error {
	name, err := moduleName(c)
	if err != nil {
		return err
	}
	out, err := s.modules.Versions(c.Request().Context(), name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// listModules is GET /api/env/node/modules (master token): every module
// known on this host.
func (s *Server) listModules(c echo.Context) error {
	if err := s.master(c); err != nil {
		return err
	}
	out, err := s.modules.List(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// removeModule is DELETE /api/env/node/modules/{name}?version=V (master
// token): 204.
func (s *Server) removeModule(c echo.Context) error {
	if err := s.master(c); err != nil {
		return err
	}
	name, err := moduleName(c)
	if err != nil {
		return err
	}
	v := c.QueryParam("version")
	if v == "" {
		return errdefs.Errorf(errdefs.ErrInvalid, "the version query parameter is required")
	}
	if err := s.modules.Remove(c.Request().Context(), types.ModuleSpec{Name: name, Version: v}); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// moduleName is the unescaped module name of the route: :name, or
// :scope/:name for an unencoded scoped name.
func moduleName(c echo.Context) (string, error) {
	name := c.Param("name")
	if scope := c.Param("scope"); scope != "" {
		name = scope + "/" + name
	}
	if strings.IndexByte(name, '%') >= 0 {
		u, err := url.PathUnescape(name)
		if err != nil {
			return "", errdefs.Errorf(errdefs.ErrInvalid, "invalid npm module name")
		}
		name = u
	}
	return name, nil
}
