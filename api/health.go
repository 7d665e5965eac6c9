package api

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/types"
)

// ReadyCheck is one part GET /readyz checks: nil when the part is ready.
// It must answer within the context's deadline.
type ReadyCheck func(ctx context.Context) error

// readyCheckTimeout bounds each readiness check.
const readyCheckTimeout = 2 * time.Second

// healthz is liveness: the process serves HTTP. It checks nothing else, so
// a supervisor restarts the daemon only when it no longer answers at all.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is readiness: 200 when every check of Deps.ReadyChecks passes,
// else 503; the body (types.Readiness) names each check's state and the
// pool's. Failures are logged; the body says only which part failed.
func (s *Server) readyz(c echo.Context) error {
	r := types.Readiness{Status: "ready", Checks: map[string]string{}}
	for name, check := range s.readyChecks {
		ctx, cancel := context.WithTimeout(c.Request().Context(), readyCheckTimeout)
		err := check(ctx)
		cancel()
		if err != nil {
			s.log.Warn("readiness check failed", "check", name, "err", err)
			r.Checks[name] = "unavailable"
			r.Status = "not ready"
			continue
		}
		r.Checks[name] = "ok"
	}
	st := s.fleet.Status()
	r.Pool = types.PoolState{Target: st.PoolTarget, Ready: st.PoolReady}
	code := http.StatusOK
	if r.Status != "ready" {
		code = http.StatusServiceUnavailable
	}
	return c.JSON(code, r)
}
