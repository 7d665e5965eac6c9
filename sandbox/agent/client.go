package agent

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

// Option configures a Client.
type Option func(*Client)

// WithStorage serves the agent's storage calls with h. Each call runs on
// its own goroutine, bounded by timeout (0: DefaultStorageTimeout) and by
// DefaultMaxStorageOps calls in flight. Without it every storage call
// fails with code 503.
func WithStorage(h StorageHandler, timeout time.Duration) Option {
	return func(c *Client) {
		c.onStorage = h
		if timeout > 0 {
			c.storageTimeout = timeout
		}
	}
}

// WithTokens serves the agent's create_token calls with h, on their own
// goroutines under the same bounds as storage calls (timeout 0:
// DefaultStorageTimeout). Without it every token call fails with code 503.
func WithTokens(h TokenHandler, timeout time.Duration) Option {
	return func(c *Client) {
		c.onToken = h
		if timeout > 0 {
			c.tokenTimeout = timeout
		}
	}
}

// Ready is the agent's boot announcement.
type Ready struct {
	// Pid is the agent's process id as seen inside its pid namespace.
	Pid int
	// Node is the Node.js version, for example "v20.20.2".
	Node string
}

// reply is what the read loop hands to a waiting Do.
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

	var expired <-chan time.Time // nil (never ready) without a timeout
	if timeout > 0 {
		if cl.timer == nil {
			cl.timer = time.NewTimer(timeout)
		} else {
			cl.timer.Reset(timeout)
		}
		expired = cl.timer.C
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
	for {
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
			// The read loop removed id from pending before replying.
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
// read loop may still hold it and reply into its channel.
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
// It returns once the read loop and every storage call ended (storage
// calls see their context cancelled).
func (c *Client) Close() error {
	err := c.conn.Close()
	c.shutdown(ErrClosed)
	<-c.done
	c.callbackWG.Wait()
	return err
}

// Done is closed when the read loop ended (EOF: the agent exited).
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
// closes conn so the read loop ends.
func (c *Client) shutdown(reason error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.err = reason
	c.mu.Unlock()
	c.endLife()
	_ = c.conn.Close()
}

func (c *Client) readLoop() {
	defer func() {
		c.shutdown(fmt.Errorf("runtime agent exited: %w", ErrClosed))
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
	}()
	br := bufio.NewReaderSize(c.conn, 64<<10)
	var long []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
				if len(long) > maxLineBytes {
					c.shutdown(fmt.Errorf("agent message longer than %d bytes: %w", maxLineBytes, ErrProtocol))
					return
				}
			}
			line = long
		}
		if err != nil {
			if !errors.Is(err, io.EOF) || len(line) > 0 {
				if errors.Is(err, io.EOF) {
					c.shutdown(fmt.Errorf("agent sent a truncated message: %w", ErrProtocol))
				} else {
					c.shutdown(fmt.Errorf("reading from runtime: %v: %w", err, ErrClosed))
				}
			}
			return
		}
		if err := c.dispatch(line); err != nil {
			c.shutdown(err)
			return
		}
		if cap(long) > 1<<20 {
			long = nil // do not pin a huge buffer
		}
	}
}

// dispatch handles one line from the agent.
func (c *Client) dispatch(line []byte) error {
	if id, body, err := parseChunk(line); err == nil {
		return c.chunk(id, body)
	}
	if id, status, hdr, body, err := parseResult(line); err == nil {
		return c.result(id, status, hdr, body, false)
	}
	if id, status, hdr, err := parseHead(line); err == nil {
		return c.result(id, status, hdr, nil, true)
	}
	var m message
	if err := json.Unmarshal(line, &m); err != nil {
		return fmt.Errorf("malformed agent message: %v: %w", err, ErrProtocol)
	}
	switch m.Op {
	case "result", "head", "need_code", "chunk", "end":
		if m.ID == 0 {
			return fmt.Errorf("agent %s without id: %w", m.Op, ErrProtocol)
		}
		switch m.Op {
		case "result", "head":
			return c.result(m.ID, m.Status, stringHeaders(m.Header), m.Body, m.Op == "head")
		case "chunk":
			return c.chunk(m.ID, m.Body)
		case "end":
			c.mu.Lock()
			st := c.streams[m.ID]
			delete(c.streams, m.ID)
			c.mu.Unlock()
			c.stopPump(m.ID)
			if st != nil {
				st.end()
			}
			return nil
		}
		c.mu.Lock()
		cl, ok := c.pending[m.ID]
		c.mu.Unlock()
		if ok {
			cl.ch <- reply{needCode: true}
		} // else abandoned by its caller (ctx expiry)
	case "log":
		if c.logs == nil {
			return nil
		}
		select {
		case c.logs <- LogLine{ID: m.ID, ReqID: m.ReqID, Stream: m.Stream, Msg: m.Msg}:
		default:
			if !c.warnedDrop.Swap(true) {
				slog.Warn("runtime agent: dropping user log lines, consumer too slow")
			}
		}
	case "req_credit":
		c.reqCredit(m.ID, m.N)
	case "storage":
		return c.storage(&m)
	case "token":
		return c.token(&m)
	case "ready":
		c.readyOnce.Do(func() {
			c.ready = Ready{Pid: m.Pid, Node: m.Node}
			close(c.readyCh)
		})
	default:
		return fmt.Errorf("unknown agent op %q: %w", m.Op, ErrProtocol)
	}
	return nil
}

// result hands a result (or, with head, the head of a streamed
// response) to its waiting Do.
func (c *Client) result(id uint64, status int, hdr map[string][]string, body []byte, head bool) error {
	if id == 0 {
		return fmt.Errorf("agent result without id: %w", ErrProtocol)
	}
	if status < 100 || status > 999 {
		return fmt.Errorf("agent result %d with status %d: %w", id, status, ErrProtocol)
	}
	c.mu.Lock()
	cl, ok := c.pending[id]
	if ok {
		delete(c.pending, id)
	}
	var st *Stream
	if ok && head {
		st = newStream(c, id, cl.req, cl.capability)
		c.streams[id] = st
	}
	c.mu.Unlock()
	if !ok {
		return nil // abandoned by its caller (ctx expiry), already aborted
	}
	cl.ch <- reply{resp: &Response{Status: status, Headers: hdr, Body: body, Stream: st}}
	return nil
}

// chunk hands a piece of a streamed body to its Stream (dropped when the
// stream is unknown: aborted and acknowledged, or abandoned).
func (c *Client) chunk(id uint64, body []byte) error {
	c.mu.Lock()
	st := c.streams[id]
	c.mu.Unlock()
	if st == nil {
		return nil
	}
	return st.push(body)
}

// stringHeaders turns decoded header values (bytes) into strings.
func stringHeaders(h map[string][][]byte) map[string][]string {
	if h == nil {
		return nil
	}
	out := make(map[string][]string, len(h))
	for k, vs := range h {
		sv := make([]string, len(vs))
		for i, v := range vs {
			sv[i] = string(v)
		}
		out[k] = sv
	}
	return out
}

func (c *Client) logLoop() {
	for l := range c.logs {
		c.onLog(l)
	}
}

// storage starts serving one storage call: the webtask's identity comes
// from the pending invocation m.ID, the handler runs on its own goroutine.
func (c *Client) storage(m *message) error {
	if m.Sid == 0 {
		return fmt.Errorf("agent storage call without sid: %w", ErrProtocol)
	}
	op := StorageOp{Doc: m.Data, Force: m.Force, Etag: m.Etag}
	switch m.Action {
	case "get":
	case "set":
		op.Set = true
	default:
		return fmt.Errorf("agent storage call with action %q: %w", m.Action, ErrProtocol)
	}
	r, ok := c.owner(m)
	if ok {
		op.Container, op.Name, op.ReqID = r.Container, r.Name, r.ReqID
	}
	switch {
	case c.onStorage == nil:
		c.storageReply(m.Sid, StorageResult{Code: codeNotServed, Message: "storage is not available"})
		return nil
	case !ok:
		op.Refused = ErrStorageNotRunning
		c.storageReply(m.Sid, c.onStorage(c.life, op))
		return nil
	}
	c.callback(c.storageTimeout, func() {
		op.Refused = ErrStorageBusy
		c.storageReply(m.Sid, c.onStorage(c.life, op))
	}, func(ctx context.Context) {
		c.storageReply(m.Sid, c.onStorage(ctx, op))
	})
	return nil
}

// owner returns the request of the running invocation a storage or token
// call names (pending, or its response streaming until its end), when the
// call carries that invocation's capability: ok is false for an id that
// is not running and for a wrong or missing cap alike. Do never modifies a request, so it may be read after the call
// finished.
func (c *Client) owner(m *message) (*Request, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var req *Request
	var capability string
	if cl, ok := c.pending[m.ID]; ok {
		req, capability = cl.req, cl.capability
	} else if st, ok := c.streams[m.ID]; ok {
		req, capability = st.req, st.capability
	}
	if req == nil || capability == "" ||
		subtle.ConstantTimeCompare([]byte(m.Cap), []byte(capability)) != 1 {
		return nil, false
	}
	return req, true
}

// callback runs one mid-invocation call of the agent (storage or token) on
// its own goroutine, within the shared slots and its timeout; when every
// slot is taken it answers busy at once. Close waits for running ones.
func (c *Client) callback(timeout time.Duration, busy func(), run func(ctx context.Context)) {
	select {
	case c.callbackSlots <- struct{}{}:
	default:
		busy()
		return
	}
	c.callbackWG.Add(1)
	go func() {
		defer c.callbackWG.Done()
		defer func() { <-c.callbackSlots }()
		ctx, cancel := context.WithTimeout(c.life, timeout)
		defer cancel()
		run(ctx)
	}()
}

// storageReply writes one storage_result.
func (c *Client) storageReply(sid uint64, r StorageResult) {
	msg := storageResultMsg{Op: "storage_result", Sid: sid, Code: r.Code, Message: r.Message, Etag: r.Etag}
	if r.Doc != "" {
		msg.Data = &r.Doc
	}
	c.reply(&msg, 128+len(r.Doc)+len(r.Message))
}

// reply writes one answer to a callback of the agent (dropped once the
// channel closed). msg holds only strings and numbers.
func (c *Client) reply(msg any, sizeHint int) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	b, err := appendJSON(make([]byte, 0, sizeHint), msg)
	if err != nil {
		c.shutdown(fmt.Errorf("encoding a callback result: %v: %w", err, ErrProtocol))
		return
	}
	_ = c.write(append(b, '\n'))
}

// token starts serving one create_token call: the parent token and the
// webtask's identity come from the pending invocation m.ID, the handler
// runs on its own goroutine (sharing the storage calls' slots).
func (c *Client) token(m *message) error {
	if m.Sid == 0 {
		return fmt.Errorf("agent token call without sid: %w", ErrProtocol)
	}
	op := TokenOp{Claims: m.Claims, URL: m.AsURL}
	r, ok := c.owner(m)
	if ok {
		op.Container, op.Name, op.ReqID, op.Headers, op.Authority = r.Container, r.Name, r.ReqID, r.Headers, r.Authority
	}
	switch {
	case c.onToken == nil:
		c.tokenReply(m.Sid, TokenResult{Code: codeNotServed, Message: "token creation is not available"})
		return nil
	case !ok:
		op.Refused = ErrTokenNotRunning
	case len(m.Claims) == 0 || m.Claims[0] != '{':
		op.Refused = ErrTokenOptions
	}
	if op.Refused != nil {
		c.tokenReply(m.Sid, c.onToken(c.life, op))
		return nil
	}
	c.callback(c.tokenTimeout, func() {
		op.Refused = ErrTokenBusy
		c.tokenReply(m.Sid, c.onToken(c.life, op))
	}, func(ctx context.Context) {
		c.tokenReply(m.Sid, c.onToken(ctx, op))
	})
	return nil
}

// tokenReply writes one token_result.
func (c *Client) tokenReply(sid uint64, r TokenResult) {
	c.reply(&tokenResultMsg{Op: "token_result", Sid: sid, Code: r.Code, Message: r.Message, Token: r.Token, URL: r.URL},
		64+len(r.Token)+len(r.URL)+len(r.Message))
}
