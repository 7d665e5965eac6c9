package api

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/httplimit"
)

// inlineBodyBytes: a run's request body up to this size travels in the
// invoke message; the rest of a larger one is streamed to the webtask
// (agent.Request.BodyMore) as it reads it, never buffered whole here.
const inlineBodyBytes = 64 << 10

// errBodyClosed: the streamed body was read after its call ended.
var errBodyClosed = errors.New("request body closed")

// runBody reads the first inlineBodyBytes of a run's request body (as
// readBody does: within the in-flight budget, the same errors); when
// there is more, it returns the rest as a streamedBody (bounded by
// MaxBodyBytes: past it reads fail with errdefs.ErrTooLarge, a 413) that
// the caller must close once the call ended.
func (s *Server) runBody(c echo.Context) ([]byte, *streamedBody, error) {
	head, rest, err := httplimit.ReadPrefix(c.Request(), s.cfg.MaxBodyBytes, inlineBodyBytes, s.bodyAccount(c))
	s.logUnreadable(c, err)
	if err != nil || rest == nil {
		return head, nil, err
	}
	// Both directions stream at once: the webtask may answer while it
	// still reads (ErrNotSupported: an in-process caller, cron).
	_ = http.NewResponseController(c.Response().Writer).EnableFullDuplex()
	return head, &streamedBody{r: rest, w: c.Response().Writer}, nil
}

// streamedBody is the rest of a request body, read by the agent client's
// goroutine while the call runs. Close (when the handler is done) waits
// for a read in progress to end, interrupting it with a read deadline, so
// that nothing reads the body after the handler returned.
type streamedBody struct {
	w      http.ResponseWriter
	mu     sync.Mutex // held by Read while it reads
	r      io.Reader
	closed bool // no more reads
}

func (b *streamedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errBodyClosed
	}
	return b.r.Read(p)
}

// Close ends reading; a read blocked on a slow caller is interrupted
// (whatever the caller still sends is then not read, and net/http drops
// the connection instead of reusing it).
func (b *streamedBody) Close() {
	if !b.mu.TryLock() {
		_ = http.NewResponseController(b.w).SetReadDeadline(time.Now())
		b.mu.Lock()
	}
	b.closed = true
	b.mu.Unlock()
}
