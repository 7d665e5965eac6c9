package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// ErrClosed and ErrProtocol wrap no errdefs kind on purpose: a failed
// channel means the runtime died or misbehaved, which the sandbox reports
// as its own crash error (the kind the caller sees).

// ErrClosed is returned by Do and WaitReady once the runtime channel is
// closed, either by Close or because the agent went away (EOF) or spoke a
// malformed line. Client.Err tells which.
var ErrClosed = errors.New("runtime channel closed")

// ErrProtocol: the agent sent a line that is not a valid protocol message.
var ErrProtocol = errors.New("runtime protocol violation")

// The client's own refusals of storage and token calls, handed to the
// handler as StorageOp.Refused / TokenOp.Refused.
var (
	// ErrStorageNotRunning and ErrTokenNotRunning: the call names no
	// invocation that is still waiting for its result.
	ErrStorageNotRunning = errdefs.New(errdefs.ErrInvalid, "storage is only available while the webtask has not responded")
	ErrTokenNotRunning   = errdefs.New(errdefs.ErrInvalid, "tokens can only be created while the webtask has not responded")
	// ErrStorageBusy and ErrTokenBusy: every callback slot of the channel
	// is taken.
	ErrStorageBusy = errdefs.New(errdefs.ErrUnavailable, "too many storage calls in flight")
	ErrTokenBusy   = errdefs.New(errdefs.ErrUnavailable, "too many calls in flight")
	// ErrTokenOptions: create_token's options are not a JSON object.
	ErrTokenOptions = errdefs.New(errdefs.ErrInvalid, "the token options must be an object")
)

// ErrTimeout: DoTimeout's timeout passed before the agent answered. The
// invocation may still be running in the agent (errdefs.ErrDeadline).
var ErrTimeout = errdefs.New(errdefs.ErrDeadline, "webtask exceeded the execution time limit")

const (
	// maxLineBytes bounds one message from the agent.
	maxLineBytes = 64 << 20
	// logBuffer is how many log lines may wait for a slow onLog callback
	// before further lines are dropped (and counted).
	logBuffer = 4096
	// maxKnownHashes bounds the set of code hashes the client believes the
	// agent has compiled; past it the set is reset (the agent then answers
	// need_code and the code is resent, so this is only a cost, never wrong).
	maxKnownHashes = 4096
	// DefaultStorageTimeout bounds one storage call's handler.
	DefaultStorageTimeout = 10 * time.Second
	// DefaultMaxStorageOps caps the storage calls being served at once per
	// channel; beyond it calls fail at once with code 503.
	DefaultMaxStorageOps = 64
)

// codeNotServed is err.code of storage and token calls on a channel that
// serves none (no handler: there is no one to map an error); it is the
// protocol's fixed "not available" answer, not an API status choice.
const codeNotServed = 503

// Ready is the agent's boot announcement.
type Ready struct {
	// Pid is the agent's process id as seen inside its pid namespace.
	Pid int
	// Node is the Node.js version, for example "v20.20.2".
	Node string
}

// reply is what the reader (lead.go) hands to a waiting Do.
type reply struct {
	needCode bool
	resp     *Response
}

// call is one in-flight invocation.
type call struct {
	ch  chan reply // buffered 1
	req *Request   // the invocation's request (its identity for storage calls)
	// capability is the invocation's secret (sent with the invoke,
	// required on its storage and token calls).
	capability string
	// timer bounds DoTimeout; created on first use, stopped whenever the
	// call is back in the pool (a stopped timer never delivers a stale
	// tick: go.mod's go >= 1.23 timer semantics).
	timer *time.Timer
}

var callPool = sync.Pool{New: func() any { return &call{ch: make(chan reply, 1)} }}

// Client speaks the runtime protocol over one channel. All methods are safe
// for concurrent use; many Do calls may be in flight at once.
type Client struct {
	conn  io.ReadWriteCloser
	onLog func(LogLine)

	// Writes are group-committed: a sender with nothing being written
	// writes its message itself; a sender that finds a write in progress
	// appends its message to out, and the writing sender writes everything
	// that accumulated before it returns (one syscall for many messages
	// when calls are concurrent).
	omu     sync.Mutex
	out     []byte // messages waiting for the active writer
	spare   []byte // the other buffer, swapped with out
	writing bool   // a sender is writing

	nextID atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]*call
	streams map[uint64]*Stream // responses streaming, until the agent's "end"
	pumps   map[uint64]*bodyPump
	known   map[string]struct{} // code hashes sent with code on this channel
	closed  bool
	err     error // why the channel closed

	readyOnce sync.Once
	readyCh   chan struct{}
	ready     Ready

	done chan struct{}

	// The reader (lead.go). lines and delivered belong to the goroutine
	// holding it; reading and streamWaits are guarded by mu.
	lines       lineReader
	delivered   bool          // the read loop handed a message to a waiter
	reading     bool          // a goroutine holds the reader
	streamWaits int           // Stream.Next calls waiting without reading
	deadliner   readDeadliner // nil: the conn cannot interrupt a Read, no one leads
	handoff     chan struct{} // cap 1: the reader is the read loop's
	idle        *time.Timer   // the read loop takes a free reader back
	wake        func()        // wakeReader
	idleGrace   time.Duration // idleReadGrace but in tests
	onLead      func()        // tests: a waiting goroutine starts leading

	logs       chan LogLine
	warnedDrop atomic.Bool // the first dropped log line was logged

	onStorage      StorageHandler
	storageTimeout time.Duration
	onToken        TokenHandler
	tokenTimeout   time.Duration
	callbackSlots  chan struct{}   // one slot per storage or token call being served
	callbackWG     sync.WaitGroup  // storage and token goroutines
	life           context.Context // cancelled when the channel closes
	endLife        context.CancelFunc
}

// NewClient starts reading conn. onLog receives user output (may be nil).
// A slow onLog never blocks the channel: up to a bounded number of lines
// wait for it, further lines are dropped (the first drop is logged).
//
// conn.Close must interrupt a blocked Read: for a socketpair fd wrap it with
// net.FileConn (or set it non-blocking before os.NewFile), never a plain
// blocking *os.File.
func NewClient(conn io.ReadWriteCloser, onLog func(LogLine), opts ...Option) *Client {
	c := &Client{
		conn:           conn,
		onLog:          onLog,
		pending:        make(map[uint64]*call),
		streams:        make(map[uint64]*Stream),
		pumps:          make(map[uint64]*bodyPump),
		known:          make(map[string]struct{}),
		readyCh:        make(chan struct{}),
		done:           make(chan struct{}),
		storageTimeout: DefaultStorageTimeout,
		tokenTimeout:   DefaultStorageTimeout,
		callbackSlots:  make(chan struct{}, DefaultMaxStorageOps),
	}
	for _, o := range opts {
		o(c)
	}
	c.life, c.endLife = context.WithCancel(context.Background())
	c.initReader()
	if onLog != nil {
		c.logs = make(chan LogLine, logBuffer)
		go c.logLoop()
	}
	go c.readLoop()
	return c
}

// WaitReady waits for the agent's "ready" message.
func (c *Client) WaitReady(ctx context.Context) (Ready, error) {
	select {
	case <-c.readyCh:
		return c.ready, nil
	default:
	}
	select {
	case <-c.readyCh:
		return c.ready, nil
	case <-c.done:
		// A ready that raced with the close still counts.
		select {
		case <-c.readyCh:
			return c.ready, nil
		default:
		}
		return Ready{}, c.closedErr()
	case <-ctx.Done():
		return Ready{}, fmt.Errorf("waiting for runtime agent: %w", ctx.Err())
	}
}

// Do sends req and waits for its response or ctx. The caller always fills
// Code and CodeHash; the client omits Code when it already sent that hash
// on this channel and resends with Code when the agent answers need_code.
// req is not modified. On ctx expiry Do returns ctx.Err() wrapped; the
// invocation may still be running in the agent (the caller recycles the
// sandbox). After the channel closed Do returns an error wrapping ErrClosed.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	return c.DoTimeout(ctx, req, 0)
}

// DoTimeout is Do bounded by timeout as well (0: no bound): past it, it
// returns an error wrapping ErrTimeout. It is cheaper than a
// context.WithTimeout around Do (a pooled timer, no derived context).
func (c *Client) DoTimeout(ctx context.Context, req *Request, timeout time.Duration) (*Response, error) {
	id := c.nextID.Add(1)
	cl := callPool.Get().(*call)

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		callPool.Put(cl)
		return nil, c.closedErr()
	}
	cl.req = req
	cl.capability = rand.Text()
	c.pending[id] = cl
	_, haveCode := c.known[req.CodeHash]
	c.mu.Unlock()

	var deadline time.Time // zero: no timeout
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	withCode := !haveCode || req.CodeHash == ""
	var bodyFailed <-chan error // nil (never ready) without a streamed body
	if req.BodyMore != nil {
		bodyFailed = c.startPump(id, req.BodyMore).failed
	}
	if err := c.send(id, cl.capability, req, withCode); err != nil {
		c.forget(id, cl)
		return nil, err
	}
	var expired <-chan time.Time // nil (never ready) without a timeout
	for {
		if c.tryLead(nil) {
			c.lead(ctx, id, deadline, func() bool { return len(cl.ch) > 0 || len(bodyFailed) > 0 })
		}
		if expired == nil && timeout > 0 && len(cl.ch) == 0 {
			// Following, or back from leading without a reply: the rest
			// of the timeout.
			if cl.timer == nil {
				cl.timer = time.NewTimer(time.Until(deadline))
			} else {
				cl.timer.Reset(time.Until(deadline))
			}
			expired = cl.timer.C
		}
		select {
		case err := <-bodyFailed:
			c.forget(id, cl)
			c.control(id, "abort", 0)
			return nil, fmt.Errorf("runtime invocation %d: %w", id, err)
		case r := <-cl.ch:
			if r.needCode {
				if withCode {
					// The agent asked for code we just sent: broken agent.
					c.forget(id, cl)
					return nil, fmt.Errorf("agent asked again for code %q: %w", req.CodeHash, ErrProtocol)
				}
				withCode = true
				if err := c.send(id, cl.capability, req, true); err != nil {
					c.forget(id, cl)
					return nil, err
				}
				continue
			}
			// The reader removed id from pending before replying.
			recycle(cl)
			if r.resp.Stream == nil && bodyFailed != nil {
				c.stopPump(id)
			}
			return r.resp, nil
		case <-c.done:
			// A reply may have raced with the close.
			select {
			case r := <-cl.ch:
				if !r.needCode {
					recycle(cl)
					return r.resp, nil
				}
			default:
			}
			c.forget(id, cl)
			return nil, c.closedErr()
		case <-ctx.Done():
			c.forget(id, cl)
			c.control(id, "abort", 0)
			return nil, fmt.Errorf("runtime invocation %d: %w", id, ctx.Err())
		case <-expired:
			c.forget(id, cl)
			c.control(id, "abort", 0)
			return nil, fmt.Errorf("runtime invocation %d: %w after %s", id, ErrTimeout, timeout)
		}
	}
}

// recycle returns a finished call to the pool.
func recycle(cl *call) {
	if cl.timer != nil {
		cl.timer.Stop()
	}
	cl.req, cl.capability = nil, ""
	callPool.Put(cl)
}

// forget drops an abandoned call. The call is not returned to the pool: the
// reader may still hold it and reply into its channel.
func (c *Client) forget(id uint64, cl *call) {
	if cl.timer != nil {
		cl.timer.Stop()
	}
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
	c.stopPump(id)
}

// msgBufPool holds encoding buffers of invoke messages.
var msgBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// send writes one invoke message.
func (c *Client) send(id uint64, capability string, req *Request, withCode bool) error {
	bp := msgBufPool.Get().(*[]byte)
	b, err := appendInvoke((*bp)[:0], id, capability, req, withCode)
	if err != nil {
		msgBufPool.Put(bp)
		// Nothing reached the channel, which stays usable.
		return fmt.Errorf("encoding runtime request: %w", err)
	}
	err = c.write(b)
	if cap(b) <= 64<<10 {
		*bp = b
		msgBufPool.Put(bp)
	}
	if err != nil {
		return c.closedErr()
	}
	if withCode && req.CodeHash != "" {
		c.mu.Lock()
		if len(c.known) >= maxKnownHashes {
			clear(c.known)
		}
		c.known[req.CodeHash] = struct{}{}
		c.mu.Unlock()
	}
	return nil
}

// write sends whole messages (each "\n" terminated) on the channel; see
// Client.omu. It returns once msg was written or handed to the sender that
// is writing (whose failure closes the channel, which every waiting Do
// sees). A write failure closes the channel.
func (c *Client) write(msg []byte) error {
	c.omu.Lock()
	if c.writing {
		c.out = append(c.out, msg...)
		c.omu.Unlock()
		return nil
	}
	c.writing = true
	c.omu.Unlock()
	queued := false // msg is a buffer taken from the queue
	for {
		_, err := c.conn.Write(msg)
		c.omu.Lock()
		if queued && cap(msg) <= 1<<20 {
			c.spare = msg[:0] // only the writer touches spare
		}
		if err != nil {
			c.writing = false
			c.out = c.out[:0]
			c.omu.Unlock()
			c.shutdown(fmt.Errorf("writing to runtime: %v: %w", err, ErrClosed))
			return err
		}
		if len(c.out) == 0 {
			c.writing = false
			c.omu.Unlock()
			return nil
		}
		// Write what others queued meanwhile.
		msg, c.out, c.spare = c.out, c.spare, nil
		queued = true
		c.omu.Unlock()
	}
}

// Close closes the channel; pending and later Do calls fail with ErrClosed.
// It returns once the reader stopped and every storage call ended
// (storage calls see their context cancelled).
func (c *Client) Close() error {
	err := c.conn.Close()
	c.shutdown(ErrClosed)
	<-c.done
	c.callbackWG.Wait()
	return err
}

// Done is closed when the channel ended (EOF: the agent exited; noticed
// within idleReadGrace when no call is waiting).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err tells why the channel closed (nil while it is open). It wraps
// ErrClosed, or ErrProtocol for a malformed message.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Client) closedErr() error {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err == nil || errors.Is(err, ErrClosed) {
		if err == nil {
			return ErrClosed
		}
		return err
	}
	return fmt.Errorf("%w: %w", ErrClosed, err)
}

// shutdown marks the client closed with reason (first reason wins) and
// closes conn so that the reader's holder ends the channel (the read loop,
// given the reader when no one held it).
func (c *Client) shutdown(reason error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.err = reason
	free := !c.reading
	c.reading = true // never free again
	c.mu.Unlock()
	c.endLife()
	_ = c.conn.Close()
	if free {
		c.handoff <- struct{}{}
	}
}
