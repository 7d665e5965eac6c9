package api

import (
	"context"
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
// On a cluster member the other members' output of the container is merged
// in (Cluster.FollowPeers), so a reader sees the container wherever it runs.
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
	if s.cluster != nil {
		// The container's output on the other members, merged into this
		// reader's bounded queue (each member's lines in their order).
		ctx, cancel := context.WithCancel(c.Request().Context())
		defer cancel()
		peersDone := s.cluster.FollowPeers(ctx, container, backlog, follow, sub.Push)
		if !follow {
			select { // their backlogs, bounded
			case <-peersDone:
			case <-time.After(peerBacklogWait):
			case <-ctx.Done():
			}
		}
	}
	s.serveLogEvents(c, sub, follow, func() error { return s.verifier.Check(claims, s.now()) })
	return nil
}

// serveLogEvents writes sub's records as Server-Sent Events (one record a
// "data:" line, "event: ping" keep-alives) until the client goes, a write
// stalls past the write timeout, the hub closes or recheck (every
// logRecheckInterval; nil: never) fails; with follow false, only what is
// queued now.
func (s *Server) serveLogEvents(c echo.Context, sub *logstream.Subscription, follow bool, recheck func() error) {
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
		return
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
		return
	}
	ping := time.NewTicker(s.cfg.LogPingInterval)
	defer ping.Stop()
	var rechecks <-chan time.Time
	if recheck != nil {
		t := time.NewTicker(logRecheckInterval)
		defer t.Stop()
		rechecks = t.C
	}
	ctx := c.Request().Context()
	for {
		select {
		case <-ctx.Done():
			return
		case <-rechecks:
			if err := recheck(); err != nil {
				s.log.Debug("log stream ended: its token is no longer valid", "req_id", reqID(c), "err", err)
				return
			}
		case <-sub.Done():
			return
		case <-ping.C:
			if !write(ssePing) {
				return
			}
		case <-sub.Ready():
			if !send() {
				return
			}
		}
	}
}
