package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox"
	"github.com/webtaskd/webtaskd/store"
)

// Response headers of webtask runs.
const (
	// HeaderSandbox tells how the call got its sandbox: warm, pooled or cold.
	HeaderSandbox = "X-Wt-Sandbox"
	// HeaderDuration is the time the sandbox manager spent on the call
	// (boot or pool assignment, queueing, the webtask), in milliseconds.
	HeaderDuration = "X-Wt-Duration-Ms"
)

// Fleet is the admin view of the sandbox fleet (*sandbox.Manager).
type Fleet interface {
	Inspect(id string) (types.SandboxInfo, error)
	Status() types.FleetStatus
	// Recycle gives container a fresh sandbox on its next call (new limits).
	Recycle(container string)
}

// ContainerLimitsStore persists per-container limit overrides (*store.Store).
type ContainerLimitsStore interface {
	GetLimits(ctx context.Context, container string) (*types.ContainerLimits, error)
	PutLimits(ctx context.Context, l types.ContainerLimits) (*types.ContainerLimits, error)
	DeleteLimits(ctx context.Context, container string) error
}

// inspectSandbox is GET /api/admin/sandboxes/{id} (master only): the
// sandbox's figures with its cgroup's memory, CPU, pids and OOM kills.
func (s *Server) inspectSandbox(c echo.Context) error {
	if err := s.master(c); err != nil {
		return err
	}
	info, err := s.fleet.Inspect(c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, info)
}

// fleetStatus is GET /api/admin/status (master only): pool and sandbox
// counts, the fleet cgroup's memory and budget.
func (s *Server) fleetStatus(c echo.Context) error {
	if err := s.master(c); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "ok", "fleet": s.fleet.Status()})
}

// getLimits is GET /api/admin/containers/{c}/limits (master only): the
// stored overrides ({} when none).
func (s *Server) getLimits(c echo.Context) error {
	container, err := s.limitsTarget(c)
	if err != nil {
		return err
	}
	l, err := s.limitStore.GetLimits(c.Request().Context(), container)
	if errors.Is(err, store.ErrNotFound) {
		return c.JSON(http.StatusOK, types.ContainerLimits{Container: container})
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, l)
}

// putLimits is PUT /api/admin/containers/{c}/limits (master only). The
// container's next call gets a sandbox with the new limits; calls in
// flight finish in the old one.
func (s *Server) putLimits(c echo.Context) error {
	container, err := s.limitsTarget(c)
	if err != nil {
		return err
	}
	// The body: every field optional, 0 or absent inherits the daemon
	// default (tmp_mb is refused: daemon-wide); "quotas" overrides the
	// per-container quotas the same way.
	var body struct {
		types.Limits
		Quotas types.Quotas `json:"quotas"`
	}
	if err := s.bindJSON(c, &body); err != nil {
		return err
	}
	o := body.Limits
	if err := sandbox.ValidateOverride(o); err != nil {
		return errdefs.Errorf(errdefs.ErrInvalid, "%s", err.Error())
	}
	if q := body.Quotas; q.MaxWebtasks < 0 || q.MaxCronJobs < 0 || q.MaxStorageBytes < 0 {
		return errdefs.Errorf(errdefs.ErrInvalid, "quotas must not be negative (0 inherits the daemon's)")
	}
	l, err := s.limitStore.PutLimits(c.Request().Context(), types.ContainerLimits{Container: container, Limits: o, Quotas: body.Quotas})
	if err != nil {
		return err
	}
	s.fleet.Recycle(container)
	return c.JSON(http.StatusOK, l)
}

// deleteLimits is DELETE /api/admin/containers/{c}/limits (master only):
// 204, or 404 when the container has no overrides.
func (s *Server) deleteLimits(c echo.Context) error {
	container, err := s.limitsTarget(c)
	if err != nil {
		return err
	}
	if err := s.limitStore.DeleteLimits(c.Request().Context(), container); err != nil {
		return err
	}
	s.fleet.Recycle(container)
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) limitsTarget(c echo.Context) (string, error) {
	if err := s.master(c); err != nil {
		return "", err
	}
	return pathName(c, "container", "container")
}

// serveMetrics is GET /metrics: Prometheus text format. It carries fleet
// figures only (no container names, no secrets) and needs no token.
func (s *Server) serveMetrics(c echo.Context) error {
	s.metrics.ServeHTTP(c.Response(), c.Request())
	return nil
}
