package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Who reads the channel. One goroutine at a time holds the reader: it
// reads the agent's messages and dispatches each (read.go) to the call,
// stream or callback it names. A goroutine about to wait for a message of
// its own (a Do for its reply, a Stream.Next for its next chunk) holds the
// reader itself when no one else does, "leading": the netpoller then wakes
// the very goroutine that waits when the agent answers, instead of waking
// a read loop that hands the message over (a second wake of a goroutine,
// often a futex wake of an idle thread, per call).
//
// A leader whose own message arrived first dispatches what is already
// buffered, then leaves the reader: to the read loop when other
// goroutines wait for messages (followers, blocked on their own channels),
// else free. The read loop takes a free reader back after idleReadGrace,
// so that messages no one waits for (log lines of code still running,
// callbacks, the agent's exit) are read promptly; it gives it up again
// once it delivered a message to a waiter and no one waits any more.
//
// A leader blocked in Read is interrupted by a read deadline in the past
// (wakeReader): for its context's end, for a failed request body, for an
// aborted stream. Its own timeout is the read deadline itself. A wake
// meant for an earlier holder costs a later one a spurious interruption,
// never a lost one: every holder restores its deadline and re-checks its
// condition after each interruption.
//
// A conn without read deadlines gets no leaders: the read loop reads
// everything, as it did before leading existed.

// idleReadGrace is how long the reader stays free before the read loop
// takes it back. Calls of a channel less than this apart each lead. A
// longer gap costs the daemon a wake from idle when the read loop takes
// the reader back (about 0.2 ms of CPU on a 2-CPU VM, docs/PERFORMANCE.md:
// with 20 ms here, calls 30 ms apart cost 30 % more daemon CPU than before
// leading existed), and the call after it is handed its answer by the read
// loop. It is also how late a message no one waits for may be read: a log
// line of code still running after its response, a callback of such code
// (refused: its invocation ended), the agent's exit (the sandbox learns of
// that from the process, not from the channel). 100 ms: log lines stay
// near real time for `wt logs`; the wake it costs when calls are further
// apart is about 0.1 ms of daemon CPU, i.e. at most 0.1 % of a CPU per
// sandbox (1 s was measured too: 4-9 % less of that CPU, trailing logs up
// to 1 s late).
const idleReadGrace = 100 * time.Millisecond

// readDeadliner is the part of net.Conn that interrupts a blocked Read.
type readDeadliner interface {
	SetReadDeadline(t time.Time) error
}

// aLongTimeAgo is a read deadline that interrupts a Read at once.
var aLongTimeAgo = time.Unix(1, 0)

// initReader sets up the reader, held by the read loop (which reads the
// agent's ready).
func (c *Client) initReader() {
	c.lines.r = c.conn
	if d, ok := c.conn.(readDeadliner); ok && d.SetReadDeadline(time.Time{}) == nil {
		c.deadliner = d
	}
	if c.idleGrace == 0 {
		c.idleGrace = idleReadGrace
	}
	c.wake = c.wakeReader // one closure, not one per leader
	c.handoff = make(chan struct{}, 1)
	c.idle = time.NewTimer(time.Hour)
	c.idle.Stop()
	c.reading = true
	c.handoff <- struct{}{}
}

// withIdleGrace replaces idleReadGrace (tests).
func withIdleGrace(d time.Duration) Option { return func(c *Client) { c.idleGrace = d } }

// withLeadHook runs f whenever a waiting goroutine starts leading (tests).
func withLeadHook(f func()) Option { return func(c *Client) { c.onLead = f } }

// tryLead takes the reader for the calling goroutine when no one holds it
// and the conn can interrupt a leader; else it runs follow (may be nil)
// under c.mu, where the holder checks who waits (waiting).
func (c *Client) tryLead(follow func()) bool {
	c.mu.Lock()
	ok := !c.reading && c.deadliner != nil
	if ok {
		c.reading = true
	} else if follow != nil {
		follow()
	}
	c.mu.Unlock()
	if ok && c.onLead != nil {
		c.onLead()
	}
	return ok
}

// lead reads and dispatches as the holder of the reader until done()
// (checked whenever no complete message is buffered), the deadline (zero:
// none) or ctx's end, or the channel's failure; it then leaves the reader.
// id is the leader's own pending call (0: none), which waits no more.
func (c *Client) lead(ctx context.Context, id uint64, deadline time.Time, done func() bool) {
	if ctx.Done() != nil {
		unhook := context.AfterFunc(ctx, c.wake)
		defer unhook()
	}
	if !deadline.IsZero() {
		_ = c.deadliner.SetReadDeadline(deadline)
	}
	stop := func() bool {
		return done() || ctx.Err() != nil || !deadline.IsZero() && !time.Now().Before(deadline)
	}
	if !c.serve(stop, deadline) {
		return
	}
	if !deadline.IsZero() {
		_ = c.deadliner.SetReadDeadline(time.Time{})
	}
	c.leave(id)
}

// leave gives up the reader: to the read loop when anyone but the
// leader's own call id waits for a message, else free.
func (c *Client) leave(id uint64) {
	c.mu.Lock()
	others := len(c.pending)
	if _, ok := c.pending[id]; ok {
		others--
	}
	if others > 0 || c.streamWaits > 0 {
		c.mu.Unlock()
		c.handoff <- struct{}{} // the read loop holds it now
		return
	}
	c.reading = false
	c.mu.Unlock()
	c.idle.Reset(c.idleGrace)
}

// waiting reports whether a goroutine waits for a message other than by
// reading: pending calls and streams' readers. c.mu held.
func (c *Client) waiting() bool { return len(c.pending) > 0 || c.streamWaits > 0 }

// wakeReader interrupts the holder's Read, if it is blocked in one.
func (c *Client) wakeReader() {
	if c.deadliner != nil {
		_ = c.deadliner.SetReadDeadline(aLongTimeAgo)
	}
}

// readLoop holds the reader whenever no waiting goroutine leads: from the
// start (the agent's ready), when a leader leaves it while others wait,
// and idleReadGrace after it was left free.
func (c *Client) readLoop() {
	for {
		select {
		case <-c.handoff:
		case <-c.idle.C:
			c.mu.Lock()
			free := !c.reading
			c.reading = true
			c.mu.Unlock()
			if !free {
				continue // someone leads; the reader comes back when it leaves
			}
		case <-c.done:
			return
		}
		c.delivered = false
		if !c.serve(c.loopLeaves, time.Time{}) {
			return
		}
		c.idle.Reset(c.idleGrace)
	}
}

// loopLeaves frees the reader when the read loop delivered a message to a
// waiter and no one waits any more (the next call leads), and says so. A
// conn without deadlines keeps it in the loop.
func (c *Client) loopLeaves() bool {
	if !c.delivered || c.deadliner == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waiting() {
		return false
	}
	c.reading = false
	return true
}

// serve reads and dispatches messages until stop() is true when no
// complete message is buffered. It returns false when the channel failed
// (then torn down: the reader is never free again). A read interrupted by
// a deadline restores deadline (zero: none) and checks stop again.
func (c *Client) serve(stop func() bool, deadline time.Time) bool {
	for {
		if line, ok := c.lines.next(); ok {
			if err := c.dispatch(line); err != nil {
				c.teardown(err)
				return false
			}
			continue
		}
		if stop() {
			return true
		}
		err := c.lines.fill()
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && c.deadliner != nil {
			_ = c.deadliner.SetReadDeadline(deadline)
			continue
		}
		switch {
		case errors.Is(err, ErrProtocol):
		case errors.Is(err, io.EOF) && c.lines.partial():
			err = fmt.Errorf("agent sent a truncated message: %w", ErrProtocol)
		case errors.Is(err, io.EOF):
			err = nil
		default:
			err = fmt.Errorf("reading from runtime: %v: %w", err, ErrClosed)
		}
		c.teardown(err)
		return false
	}
}

// teardown ends the channel after the holder's read or dispatch failed
// (reason nil: the agent hung up): every waiter fails, c.done closes.
func (c *Client) teardown(reason error) {
	if reason != nil {
		c.shutdown(reason)
	}
	c.shutdown(fmt.Errorf("runtime agent exited: %w", ErrClosed))
	c.idle.Stop()
	c.mu.Lock()
	clear(c.pending)
	streams := c.streams
	c.streams = map[uint64]*Stream{}
	for _, p := range c.pumps {
		p.halt()
	}
	clear(c.pumps)
	c.mu.Unlock()
	for _, st := range streams {
		st.fail(c.closedErr())
	}
	if c.logs != nil {
		close(c.logs)
	}
	close(c.done)
}
