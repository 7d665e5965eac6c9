package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/sandbox/logstream"
)

// Defaults of the real-time log stream.
const (
	// DefaultLogReplayWindow: a stream opened without tail starts with the
	// lines of this recent past, so that a reader connecting just as a call
	// runs does not miss its first lines (wt logs reports "connected"
	// before its request reaches the daemon).
	DefaultLogReplayWindow = 5 * time.Second
	// maxLogTail caps the backlog a reader may ask for.
	maxLogTail = 1000
	// logRecheckInterval is how often an open stream re-checks its token
	// (revocation of it or an ancestor, expiry, key retirement): a stream
	// ends within this of its token going bad.
	logRecheckInterval = 250 * time.Millisecond
)

var (
	sseOpen = []byte(":ok\n\n")
	ssePing = []byte("event: ping\ndata: {}\n\n")
)

// streamLogs is GET /api/logs/tenant/{container}?key=T[&tail=N][&follow=0]:
// the container's webtask output as Server-Sent Events, one bunyan record
// per "data:" line (reference §1.4), "event: ping" keep-alives. tail=N
// first sends up to N recent records (tail=0: only new ones; without tail,
// the records of the last DefaultLogReplayWindow); follow=0 ends the
// stream after them. The stream ends when the client
// goes, a write stalls past the write timeout, the daemon shuts down, or
// its token is revoked (or an ancestor), expires or loses its key set
// (re-checked every logRecheckInterval against the store's revocations).
func (s *Server) streamLogs(c echo.Context) error {
	claims, container, err := s.containerParam(c)
	if err != nil {
		return err
	}
	backlog := logstream.Backlog{Max: maxLogTail, Since: s.now().Add(-DefaultLogReplayWindow)}
	if v := c.QueryParam("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errdefs.Errorf(errdefs.ErrInvalid, "tail must be a non-negative integer")
		}
		backlog = logstream.Backlog{Max: min(n, maxLogTail)}
	}
	follow := true
	if v := c.QueryParam("follow"); v == "0" || v == "false" {
		follow = false
	}
	sub, err := s.logs.Subscribe(container, backlog)
	if err != nil {
		return err // logstream.ErrClosed: 503
	}
	defer sub.Close()

	res := c.Response()
	h := res.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	res.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(res)
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }() // the connection may serve more requests
	// write sends one whole event and flushes it.
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.LogWriteTimeout))
		if _, err := res.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write(sseOpen) {
		return nil
	}
	var buf []byte
	send := func() bool {
		for _, enc := range sub.Take() {
			buf = append(buf[:0], "data: "...)
			buf = append(buf, enc...)
			buf = append(buf, '\n', '\n')
			if !write(buf) {
				return false
			}
		}
		return true
	}
	if !follow {
		send()
		return nil
	}
	ping := time.NewTicker(s.cfg.LogPingInterval)
	defer ping.Stop()
	recheck := time.NewTicker(logRecheckInterval)
	defer recheck.Stop()
	ctx := c.Request().Context()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-recheck.C:
			if err := s.verifier.Check(claims, s.now()); err != nil {
				s.log.Debug("log stream ended: its token is no longer valid", "req_id", reqID(c), "err", err)
				return nil
			}
		case <-sub.Done():
			return nil
		case <-ping.C:
			if !write(ssePing) {
				return nil
			}
		case <-sub.Ready():
			if !send() {
				return nil
			}
		}
	}
}
