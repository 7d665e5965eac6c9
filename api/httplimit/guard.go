package httplimit

import (
	"bytes"
	"errors"
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
	ErrUnreadable = errdefs.New(errdefs.ErrInvalid, "the request body could not be read")
)

// readChunk is how much of a body is reserved and read at a time.
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
// actually arrives (never by what Content-Length announces), reserving
// each chunk from the in-flight budget into acct before reading it. A
// Content-Length above max is refused before reading. Errors: an errdefs.ErrTooLarge,
// ErrBusy, ErrUnreadable (wrapping the read error).
func ReadBody(r *http.Request, max int64, acct *Body) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > max {
		return nil, errdefs.Errorf(errdefs.ErrTooLarge, "request body exceeds %d bytes", max)
	}
	var buf bytes.Buffer
	lr := io.LimitReader(r.Body, max+1)
	for {
		if buf.Available() < 512 {
			want := int64(min(readChunk, max+1-int64(buf.Len())))
			if want <= 0 {
				want = 1
			}
			if !acct.reserve(want) {
				return nil, ErrBusy
			}
			buf.Grow(int(want))
		}
		free := buf.AvailableBuffer()
		n, err := lr.Read(free[:cap(free)])
		buf.Write(free[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, http.ErrBodyReadAfterClose) {
				return nil, ErrUnreadable
			}
			return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
		}
	}
	if int64(buf.Len()) > max {
		return nil, errdefs.Errorf(errdefs.ErrTooLarge, "request body exceeds %d bytes", max)
	}
	if buf.Len() == 0 {
		return nil, nil
	}
	return buf.Bytes(), nil
}
