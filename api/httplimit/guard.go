package httplimit

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// Errors of ReadBody.
var (
	// ErrBusy: the in-flight body budget is spent (503).
	ErrBusy = errdefs.New(errdefs.ErrUnavailable, "too many request bodies are being received; retry")
	// ErrUnreadable: the client did not send the body it announced (cut
	// off by the read deadline, aborted, malformed chunking) (400).
	ErrUnreadable = errdefs.New(errdefs.ErrInvalid, "the request body could not be read: malformed chunked encoding or an incomplete upload")
)

// readChunk is the first buffer of a body (then doubled as needed).
const readChunk = 32 << 10

// Guard applies one Config: the listener, the server, per-client request
// admission and the body budget. Safe for concurrent use.
type Guard struct {
	cfg Config
	log *slog.Logger

	bodyBytes atomic.Int64 // reserved from MaxInflightBodyBytes

	mu       sync.Mutex
	inflight map[netip.Addr]int // proxied requests per client
}

// New returns the Guard of a validated cfg.
func New(cfg Config, log *slog.Logger) *Guard {
	if log == nil {
		log = slog.Default()
	}
	return &Guard{cfg: cfg, log: log, inflight: make(map[netip.Addr]int)}
}

// Body is the accounting of one request's buffered body bytes; Release
// gives them back to the budget (call it once the body is no longer used).
type Body struct {
	g *Guard
	n int64
}

// Release returns the reserved bytes (idempotent; a nil Body does nothing).
func (b *Body) Release() {
	if b == nil || b.g == nil || b.n == 0 {
		return
	}
	b.g.bodyBytes.Add(-b.n)
	b.n = 0
}

func (b *Body) reserve(n int64) bool {
	if b.g == nil || b.g.cfg.MaxInflightBodyBytes <= 0 {
		return true
	}
	if b.g.bodyBytes.Add(n) > b.g.cfg.MaxInflightBodyBytes {
		b.g.bodyBytes.Add(-n)
		return false
	}
	b.n += n
	return true
}

// NewBody starts the accounting of one request (g may be nil: no budget).
func (g *Guard) NewBody() *Body { return &Body{g: g} }

// ReadBody reads r up to max bytes into memory, growing with what
// actually arrives (never by what Content-Length announces): the buffer
// starts at readChunk and doubles when full, each growth reserved from the
// in-flight budget into acct first (the budget counts buffer capacity). A
// Content-Length above max is refused before reading. Errors: an
// errdefs.ErrTooLarge, ErrBusy, ErrUnreadable (wrapping the read error).
func ReadBody(r *http.Request, max int64, acct *Body) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > max {
		return nil, errdefs.Errorf(errdefs.ErrTooLarge, "request body exceeds %d bytes", max)
	}
	limit := max + 1 // one more byte tells "too large"
	lr := io.LimitReader(r.Body, limit)
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			grow := int64(readChunk)
			if cap(buf) > 0 {
				grow = int64(cap(buf))
			}
			grow = min(grow, limit-int64(cap(buf)))
			if grow <= 0 {
				grow = 1
			}
			if !acct.reserve(grow) {
				return nil, ErrBusy
			}
			nb := make([]byte, len(buf), int64(cap(buf))+grow)
			copy(nb, buf)
			buf = nb
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
		}
	}
	if int64(len(buf)) > max {
		return nil, errdefs.Errorf(errdefs.ErrTooLarge, "request body exceeds %d bytes", max)
	}
	if len(buf) == 0 {
		return nil, nil
	}
	return buf, nil
}
