package api

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// inlineBodyBytes: a run's request body up to this size travels in the
// invoke message; the rest of a larger one is streamed to the webtask
// (agent.Request.BodyMore) as it reads it, never buffered whole here.
const inlineBodyBytes = 64 << 10

// errBodyClosed: the streamed body was read after its call ended.
var errBodyClosed = errors.New("request body closed")

// runBody reads the first inlineBodyBytes of a run's request body; when
// there is more, it returns the rest as a streamedBody (bounded by
// MaxBodyBytes: past it reads fail with an *http.MaxBytesError, a 413)
// that the caller must close once the call ended. A Content-Length over
// MaxBodyBytes is refused at once.
func (s *Server) runBody(c echo.Context) ([]byte, *streamedBody, error) {
	r := c.Request()
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil, nil
	}
	max := s.cfg.MaxBodyBytes
	if r.ContentLength > max {
		return nil, nil, errdefs.Errorf(errdefs.ErrTooLarge, "request body exceeds %d bytes", max)
	}
	size := int64(inlineBodyBytes)
	if r.ContentLength >= 0 && r.ContentLength < size {
		size = r.ContentLength + 1 // +1: see EOF without a second read
	}
	body := http.MaxBytesReader(c.Response().Writer, r.Body, max)
	head := make([]byte, size)
	n, err := io.ReadFull(body, head)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		if n == 0 {
			return nil, nil, nil
		}
		return head[:n], nil, nil
	case err != nil:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, nil, errdefs.Errorf(errdefs.ErrTooLarge, "request body exceeds %d bytes", max)
		}
		return nil, nil, err
	}
	// Both directions stream at once: the webtask may answer while it
	// still reads (ErrNotSupported: an in-process caller, cron).
	_ = http.NewResponseController(c.Response().Writer).EnableFullDuplex()
	return head[:n], &streamedBody{r: body, w: c.Response().Writer}, nil
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
	n, err := b.r.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = errdefs.Errorf(errdefs.ErrTooLarge, "request body exceeds %d bytes", mbe.Limit)
	}
	return n, err
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
