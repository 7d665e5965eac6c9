package agent

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
)

// ErrRequestBody wraps a failure to read the rest of a streamed request
// body (Request.BodyMore): the invocation was aborted; the wrapped error
// tells why (a too-large body, a caller gone).
var ErrRequestBody = errors.New("request body")

// reqChunkBytes is the largest piece of request body in one req_chunk.
const reqChunkBytes = 32 << 10

// bodyPump streams Request.BodyMore of one invocation to the agent as the
// agent grants credit (req_credit), until EOF, a read error, or the
// invocation's end.
type bodyPump struct {
	c      *Client
	id     uint64
	src    io.Reader
	credit atomic.Int64
	wake   chan struct{} // cap 1
	stop   chan struct{}
	once   sync.Once
	failed chan error // cap 1: a read error, for the waiting Do
}

func newBodyPump(c *Client, id uint64, src io.Reader) *bodyPump {
	return &bodyPump{c: c, id: id, src: src, wake: make(chan struct{}, 1), stop: make(chan struct{}), failed: make(chan error, 1)}
}

func (p *bodyPump) grant(n int64) {
	if n <= 0 {
		return
	}
	p.credit.Add(n)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *bodyPump) halt() { p.once.Do(func() { close(p.stop) }) }

func (p *bodyPump) run() {
	defer p.c.dropPump(p.id, p)
	buf := make([]byte, reqChunkBytes)
	line := make([]byte, 0, 64+base64.StdEncoding.EncodedLen(reqChunkBytes))
	prefix := func(op string) []byte {
		b := append(line[:0], `{"op":"`...)
		b = append(b, op...)
		b = append(b, `","id":`...)
		return strconv.AppendUint(b, p.id, 10)
	}
	for {
		for p.credit.Load() <= 0 {
			select {
			case <-p.wake:
			case <-p.stop:
				return
			}
		}
		n, err := p.src.Read(buf[:min(int64(len(buf)), p.credit.Load())])
		select {
		case <-p.stop:
			return
		default:
		}
		if n > 0 {
			p.credit.Add(-int64(n))
			b := append(prefix("req_chunk"), `,"body":"`...)
			b = base64.StdEncoding.AppendEncode(b, buf[:n])
			if p.c.write(append(b, "\"}\n"...)) != nil {
				return
			}
		}
		if errors.Is(err, io.EOF) {
			_ = p.c.write(append(prefix("req_end"), "}\n"...))
			return
		}
		if err != nil {
			p.fail(fmt.Errorf("%w: %w", ErrRequestBody, err))
			return
		}
	}
}

// fail aborts the invocation: a waiting Do returns err, a streamed
// response is cut off with it.
func (p *bodyPump) fail(err error) {
	select {
	case p.failed <- err:
	default:
	}
	p.c.wakeReader() // a Do leading (lead.go)
	p.c.mu.Lock()
	st := p.c.streams[p.id]
	p.c.mu.Unlock()
	if st != nil {
		st.Abort(err)
		return
	}
	p.c.control(p.id, "abort", 0)
}

// startPump registers the body pump of invocation id (before its invoke
// is sent, so that no req_credit is missed).
func (c *Client) startPump(id uint64, src io.Reader) *bodyPump {
	p := newBodyPump(c, id, src)
	c.mu.Lock()
	c.pumps[id] = p
	c.mu.Unlock()
	go p.run()
	return p
}

// stopPump ends invocation id's body pump, if any.
func (c *Client) stopPump(id uint64) {
	c.mu.Lock()
	p := c.pumps[id]
	delete(c.pumps, id)
	c.mu.Unlock()
	if p != nil {
		p.halt()
	}
}

func (c *Client) dropPump(id uint64, p *bodyPump) {
	c.mu.Lock()
	if c.pumps[id] == p {
		delete(c.pumps, id)
	}
	c.mu.Unlock()
}

// reqCredit hands an agent's req_credit to its pump (dropped when none).
func (c *Client) reqCredit(id uint64, n int64) {
	c.mu.Lock()
	p := c.pumps[id]
	c.mu.Unlock()
	if p != nil {
		p.grant(n)
	}
}
