package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
)

// Backuper writes an encrypted backup archive of the daemon's data to w
// (the daemon). The API holds its key lock meanwhile: no key set is rotated
// or retired during a backup.
type Backuper interface {
	Backup(ctx context.Context, passphrase []byte, w io.Writer) error
}

// backup is POST /api/admin/backup (master only): the body is a
// types.BackupRequest, the answer the archive (application/octet-stream).
// The passphrase is never logged.
func (s *Server) backup(c echo.Context) error {
	caller, _, err := s.caller(c)
	if err != nil {
		return err
	}
	if err := requireMaster(caller); err != nil {
		return err
	}
	if s.backuper == nil {
		return errdefs.New(errdefs.ErrUnavailable, "backups are not available")
	}
	var req types.BackupRequest
	if err := s.bindJSON(c, &req); err != nil {
		return err
	}
	began := time.Now()
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	var buf bytes.Buffer
	if err := s.backuper.Backup(c.Request().Context(), []byte(req.Passphrase), &buf); err != nil {
		return err
	}
	name := "webtaskd-" + s.now().UTC().Format("20060102T150405Z") + ".wtbackup"
	c.Response().Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	c.Response().Header().Set("Cache-Control", "no-store")
	s.log.Info("backup taken", "req_id", c.Response().Header().Get(HeaderRequestID), "bytes", buf.Len(),
		"took", time.Since(began).Round(time.Millisecond))
	return c.Blob(http.StatusOK, "application/octet-stream", buf.Bytes())
}
