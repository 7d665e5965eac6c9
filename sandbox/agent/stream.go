package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
)

// StreamWindowBytes is the flow-control window of one streamed response:
// the agent never has more body bytes sent and not yet granted back than
// this, so the daemon holds at most this much of one stream however slow
// its reader is.
const StreamWindowBytes = 256 << 10

// streamGrantBytes: the client grants credit back once its reader has
// consumed this many bytes (fewer, larger credit messages).
const streamGrantBytes = StreamWindowBytes / 4

// ErrStreamClosed is what Read returns after Close.
var ErrStreamClosed = errors.New("response stream closed")

// Stream is the body of a streamed response, as the agent sends it
// ("chunk" messages up to "end"). It is read by one goroutine (Next, Read
// or WriteTo); Abort and Close may be called from any goroutine.
type Stream struct {
	c          *Client
	id         uint64
	req        *Request // the invocation's request: its identity for storage calls
	capability string   // the invocation's capability, which those calls carry

	mu        sync.Mutex
	chunks    [][]byte // received, not yet read
	cur       []byte   // the rest of the chunk Read is in
	avail     int      // bytes the agent may still send: window + granted - received
	ungranted int      // bytes read and not yet granted back
	ended     bool     // the agent sent "end"
	err       error    // abort or channel failure: reads fail with it
	wake      chan struct{}
	closeOnce sync.Once
	closed    chan struct{} // closed by Close
	onClose   func()        // run once by Close (AfterClose)
}

func newStream(c *Client, id uint64, req *Request, capability string) *Stream {
	return &Stream{c: c, id: id, req: req, capability: capability, avail: StreamWindowBytes,
		wake: make(chan struct{}, 1), closed: make(chan struct{})}
}

func (s *Stream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// push adds a chunk from the agent; more than the window is a protocol
// violation.
func (s *Stream) push(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(b) > s.avail {
		return fmt.Errorf("agent sent %d bytes of stream %d with %d bytes of credit: %w", len(b), s.id, s.avail, ErrProtocol)
	}
	s.avail -= len(b)
	if s.err != nil || len(b) == 0 {
		return nil // aborted: dropped
	}
	s.chunks = append(s.chunks, b)
	s.signal()
	return nil
}

// end marks the body complete (or, after Abort, acknowledged).
func (s *Stream) end() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.signal()
}

// fail ends the stream with err unless it already ended.
func (s *Stream) fail(err error) {
	s.mu.Lock()
	if s.err == nil && !s.ended {
		s.err = err
		s.chunks = nil
	}
	s.mu.Unlock()
	s.signal()
}

// Next returns the next piece of the body, io.EOF after the last one, or
// the error the stream failed with (an Abort's, or one wrapping ErrClosed
// when the channel failed). The piece is the caller's.
func (s *Stream) Next() ([]byte, error) {
	for {
		s.mu.Lock()
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return nil, err
		}
		if len(s.chunks) > 0 {
			b := s.chunks[0]
			s.chunks[0] = nil
			s.chunks = s.chunks[1:]
			grant := 0
			s.ungranted += len(b)
			if s.ungranted >= streamGrantBytes && !s.ended {
				grant, s.ungranted = s.ungranted, 0
				s.avail += grant
			}
			s.mu.Unlock()
			if grant > 0 {
				s.c.control(s.id, "credit", grant)
			}
			return b, nil
		}
		if s.ended {
			s.mu.Unlock()
			return nil, io.EOF
		}
		s.mu.Unlock()
		s.c.awaitStream(s)
	}
}

// Pending tells whether Next would return a piece or the clean end at
// once, without waiting: a writer of the body flushes only when it would
// not (a stream that failed is not pending: what was written before the
// failure is flushed first).
func (s *Stream) Pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err == nil && (len(s.chunks) > 0 || s.ended)
}

// awaitStream waits for s's next signal (a chunk, its end, its failure),
// reading the channel itself when no one else does (lead.go).
func (c *Client) awaitStream(s *Stream) {
	if c.tryLead(func() { c.streamWaits++ }) {
		c.lead(context.Background(), 0, time.Time{}, func() bool { return len(s.wake) > 0 })
		<-s.wake
		return
	}
	<-s.wake
	c.mu.Lock()
	c.streamWaits--
	c.mu.Unlock()
}

// Read reads the body.
func (s *Stream) Read(p []byte) (int, error) {
	if len(s.cur) == 0 {
		b, err := s.Next()
		if err != nil {
			return 0, err
		}
		s.cur = b
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}

// Abort ends the response early: reads fail with err, and the agent is
// told to abort the webtask's response (its req and res emit "close").
// The invocation stays known to the client (storage calls of its close
// handlers still work) until the agent acknowledges. No-op once the
// stream failed or the agent ended it.
func (s *Stream) Abort(err error) {
	s.mu.Lock()
	if s.err != nil || s.ended {
		s.mu.Unlock()
		return
	}
	s.err = err
	s.chunks = nil
	s.mu.Unlock()
	s.signal()
	s.c.wakeReader() // a Next leading (lead.go)
	s.c.stopPump(s.id)
	s.c.control(s.id, "abort", 0)
}

// Close releases the stream; a body not read to its end is aborted.
func (s *Stream) Close() error {
	s.Abort(ErrStreamClosed)
	s.mu.Lock()
	s.chunks, s.cur = nil, nil
	s.mu.Unlock()
	s.closeOnce.Do(func() {
		close(s.closed)
		s.mu.Lock()
		f := s.onClose
		s.onClose = nil
		s.mu.Unlock()
		if f != nil {
			f()
		}
	})
	return nil
}

// Closed is closed once Close was called.
func (s *Stream) Closed() <-chan struct{} { return s.closed }

// AfterClose arranges for f to run once, in the first Close (at once when
// the stream is already closed): a callback instead of a goroutine waiting
// on Closed. One callback per stream; a second replaces the first.
func (s *Stream) AfterClose(f func()) {
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		f()
		return
	default:
	}
	s.onClose = f
	s.mu.Unlock()
}

// control writes a flow-control message for invocation id: "credit" (n
// bytes) or "abort".
func (c *Client) control(id uint64, op string, n int) {
	var buf [64]byte
	b := append(buf[:0], `{"op":"`...)
	b = append(b, op...)
	b = append(b, `","id":`...)
	b = strconv.AppendUint(b, id, 10)
	if op == "credit" {
		b = append(b, `,"n":`...)
		b = strconv.AppendInt(b, int64(n), 10)
	}
	b = append(b, "}\n"...)
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if !closed {
		_ = c.write(b)
	}
}
