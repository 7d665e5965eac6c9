package agent

import (
	"context"
	"crypto/subtle"
	"fmt"
	"time"
)

// The callbacks a running webtask makes to the daemon over the channel:
// ctx.storage (storage/storage_result) and ctx.create_token
// (token/token_result). Each runs on its own goroutine, bounded by its
// timeout, and is bound to the pending invocation that made it (its id and
// capability).

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
	if c.onStorage == nil {
		c.storageReply(m.Sid, StorageResult{Code: codeNotServed, Message: "storage is not available"})
		return nil
	}
	var refused error
	if !ok {
		refused = ErrStorageNotRunning
	}
	c.callback(c.storageTimeout, refused, ErrStorageBusy, func(ctx context.Context, refused error) {
		op.Refused = refused
		c.storageReply(m.Sid, c.onStorage(ctx, op))
	})
	return nil
}

// owner returns the request of the running invocation a storage or token
// call names (pending, or its response streaming until its end), when the
// call carries that invocation's capability: ok is false for an id that
// is not running and for a wrong or missing cap alike. Do never modifies a
// request, so it may be read after the call finished.
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

// callback serves one mid-invocation call of the agent (storage or token).
// A call refused before it runs (refused != nil) is answered at once, as is
// one that finds every shared slot taken (refused = busy): the handler
// still sees it, to answer with the API's own mapping, but must do no I/O.
// Otherwise serve runs on its own goroutine within its timeout; Close
// waits for running ones.
func (c *Client) callback(timeout time.Duration, refused, busy error, serve func(ctx context.Context, refused error)) {
	if refused == nil {
		select {
		case c.callbackSlots <- struct{}{}:
		default:
			refused = busy
		}
	}
	if refused != nil {
		serve(c.life, refused)
		return
	}
	c.callbackWG.Add(1)
	go func() {
		defer c.callbackWG.Done()
		defer func() { <-c.callbackSlots }()
		ctx, cancel := context.WithTimeout(c.life, timeout)
		defer cancel()
		serve(ctx, nil)
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
	if c.onToken == nil {
		c.tokenReply(m.Sid, TokenResult{Code: codeNotServed, Message: "token creation is not available"})
		return nil
	}
	var refused error
	switch {
	case !ok:
		refused = ErrTokenNotRunning
	case len(m.Claims) == 0 || m.Claims[0] != '{':
		refused = ErrTokenOptions
	}
	c.callback(c.tokenTimeout, refused, ErrTokenBusy, func(ctx context.Context, refused error) {
		op.Refused = refused
		c.tokenReply(m.Sid, c.onToken(ctx, op))
	})
	return nil
}

// tokenReply writes one token_result.
func (c *Client) tokenReply(sid uint64, r TokenResult) {
	c.reply(&tokenResultMsg{Op: "token_result", Sid: sid, Code: r.Code, Message: r.Message, Token: r.Token, URL: r.URL},
		64+len(r.Token)+len(r.URL)+len(r.Message))
}
