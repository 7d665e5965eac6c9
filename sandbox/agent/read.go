package agent

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// Dispatching the agent's messages, by whichever goroutine holds the
// reader (lead.go): each goes to the pending invocation it names (result,
// head, chunk, end) or to the callback runners (storage, token); log lines
// go to their own loop so a slow log consumer never stalls replies.

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
	if id, err := parseEnd(line); err == nil {
		c.end(id)
		return nil
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
			c.end(m.ID)
			return nil
		}
		c.mu.Lock()
		cl, ok := c.pending[m.ID]
		c.mu.Unlock()
		if ok { // else abandoned by its caller (ctx expiry)
			return c.deliver(m.ID, cl, reply{needCode: true})
		}
	case "log":
		if c.logs == nil {
			return nil
		}
		line := LogLine{ID: m.ID, ReqID: m.ReqID, Stream: m.Stream, Msg: m.Msg}
		c.mu.Lock()
		if cl, ok := c.pending[m.ID]; ok && cl.req != nil {
			line.Name = cl.req.Name
		}
		c.mu.Unlock()
		select {
		case c.logs <- line:
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
	return c.deliver(id, cl, reply{resp: &Response{Status: status, Headers: hdr, Body: body, Stream: st}})
}

// deliver hands r to invocation id's waiting Do. The agent answers an
// invoke once (need_code, then the resend's answer), so the buffer of one
// is free; a second answer before Do took the first is a protocol
// violation, never a wait (the reader may be that Do itself).
func (c *Client) deliver(id uint64, cl *call, r reply) error {
	select {
	case cl.ch <- r:
		c.delivered = true
		return nil
	default:
		return fmt.Errorf("agent answered invocation %d twice: %w", id, ErrProtocol)
	}
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
	c.delivered = true
	return st.push(body)
}

// end completes a streamed body (after an Abort: acknowledges it); an
// unknown stream's end is dropped, as its chunks are.
func (c *Client) end(id uint64) {
	c.mu.Lock()
	st := c.streams[id]
	delete(c.streams, id)
	c.mu.Unlock()
	c.stopPump(id)
	if st != nil {
		c.delivered = true
		st.end()
	}
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
