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
		return nil, tooLarge(max)
	}
	buf, _, err := readUpTo(r.Body, max+1, acct) // one more byte tells "too large"
	if err != nil {
		return nil, err
	}
	if int64(len(buf)) > max {
		return nil, tooLarge(max)
	}
	return buf, nil
}

// ReadPrefix is ReadBody for a body that may be streamed: it buffers at
// most prefix bytes (as ReadBody does, within the budget); when the body
// is longer, rest is its unread remainder, read by the caller as it goes
// (never buffered here), bounded by max bytes in all: past it reads fail
// with an errdefs.ErrTooLarge, a failed read with ErrUnreadable. rest is
// nil when the whole body was read.
func ReadPrefix(r *http.Request, max, prefix int64, acct *Body) (head []byte, rest io.Reader, err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil, nil
	}
	if r.ContentLength > max {
		return nil, nil, tooLarge(max)
	}
	buf, eof, err := readUpTo(r.Body, min(prefix, max+1), acct)
	switch {
	case err != nil:
		return nil, nil, err
	case int64(len(buf)) > max:
		return nil, nil, tooLarge(max)
	case eof:
		return buf, nil, nil
	}
	return buf, &restReader{r: r.Body, left: max - int64(len(buf)), max: max}, nil
}

// readUpTo reads src until EOF or limit bytes (eof tells which), growing
// its buffer within acct's budget.
func readUpTo(src io.Reader, limit int64, acct *Body) (buf []byte, eof bool, err error) {
	lr := io.LimitReader(src, limit)
	for int64(len(buf)) < limit {
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
				return nil, false, ErrBusy
			}
			nb := make([]byte, len(buf), int64(cap(buf))+grow)
			copy(nb, buf)
			buf = nb
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			eof = true
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrUnreadable, err)
		}
	}
	if len(buf) == 0 {
		return nil, eof, nil
	}
	return buf, eof, nil
}

func tooLarge(max int64) error {
	return errdefs.Errorf(errdefs.ErrTooLarge, "request body exceeds %d bytes", max)
}

// restReader is ReadPrefix's remainder: at most left more bytes.
type restReader struct {
	r         io.Reader
	left, max int64
}

func (b *restReader) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1] // one more byte tells "too large"
	}
	n, err := b.r.Read(p)
	if int64(n) > b.left {
		return 0, tooLarge(b.max)
	}
	b.left -= int64(n)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	return n, err
}
