package sandbox

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// streamLimits bound one streamed response body.
type streamLimits struct {
	maxBytes int64         // body budget (0: none)
	idle     time.Duration // longest wait for the next piece
	total    time.Duration // longest stream, from its head
}

// streamBody is the Call.Body of a streamed response: the agent stream
// under the call's budget and timeouts, cut off (aborted) past them or
// when the caller's context ends; Close gives the call's concurrency slot
// back.
type streamBody struct {
	st     *agent.Stream
	limits streamLimits
	n      int64  // bytes delivered
	cur    []byte // the rest of the piece Read is in

	idleTimer  *time.Timer
	totalTimer *time.Timer
	stopCtx    func() bool

	closeOnce sync.Once
	release   func()
}

func newStreamBody(ctx context.Context, st *agent.Stream, l streamLimits, release func()) *streamBody {
	b := &streamBody{st: st, limits: l, release: release}
	timeout := func(what string, d time.Duration) func() {
		return func() { st.Abort(fmt.Errorf("%w (%s %s)", ErrStreamTimeout, what, d)) }
	}
	b.idleTimer = time.AfterFunc(l.idle, timeout("idle for", l.idle))
	b.totalTimer = time.AfterFunc(l.total, timeout("streaming for", l.total))
	b.stopCtx = context.AfterFunc(ctx, func() { st.Abort(context.Cause(ctx)) })
	return b
}

// next returns the next piece of the body (the caller's), io.EOF at its
// end, or why it was cut off.
func (b *streamBody) next() ([]byte, error) {
	p, err := b.st.Next()
	if err != nil {
		return nil, err
	}
	b.n += int64(len(p))
	if b.limits.maxBytes > 0 && b.n > b.limits.maxBytes {
		err := fmt.Errorf("%w (%d bytes)", ErrResponseTooLarge, b.limits.maxBytes)
		b.st.Abort(err)
		return nil, err
	}
	b.idleTimer.Reset(b.limits.idle)
	return p, nil
}

func (b *streamBody) Read(p []byte) (int, error) {
	if len(b.cur) == 0 {
		next, err := b.next()
		if err != nil {
			return 0, err
		}
		b.cur = next
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	return n, nil
}

// Pending tells whether Read would return at once with more of the body
// or its clean end (agent.Stream.Pending): the caller flushes what it
// wrote only when not.
func (b *streamBody) Pending() bool { return len(b.cur) > 0 || b.st.Pending() }

// Close aborts a stream not read to its end, stops the timers and gives
// the call's slot back (once).
func (b *streamBody) Close() error {
	b.closeOnce.Do(func() {
		b.idleTimer.Stop()
		b.totalTimer.Stop()
		b.stopCtx()
		_ = b.st.Close()
		b.cur = nil
		b.release()
	})
	return nil
}

// announcedLength is a response's content-length, -1 when it has none.
func announcedLength(h map[string][]string) int64 {
	if v := h["content-length"]; len(v) == 1 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			return n
		}
	}
	return -1
}
