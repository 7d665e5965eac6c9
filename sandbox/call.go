package sandbox

import (
	"io"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
)

// Call is what Manager.Invoke served: how the call was served, then the
// webtask's response as status, headers and a body the caller reads as a
// stream: one buffered chunk for a complete response, or the pieces the
// webtask writes as it writes them (Streamed).
type Call struct {
	// Served tells how the container's sandbox was obtained ("" when the
	// call never got one).
	Served types.Served
	// SandboxID is the sandbox that ran the call ("" when none did).
	SandboxID string
	// Queued is the time spent waiting for a concurrency slot.
	Queued time.Duration
	// Duration is the time from Invoke's start to its return (boot,
	// queueing and the webtask).
	Duration time.Duration

	// Status, Header and Body are the webtask's response; set only when
	// Invoke returns no error. Header names are lower case.
	Status int
	Header map[string][]string
	// Body is the response body. The caller reads it and must Close it.
	// A streamed body's Read blocks until the webtask writes; it fails
	// (not io.EOF) when the stream is cut off (ErrResponseTooLarge,
	// ErrStreamTimeout, the runtime failing, the caller's context ending):
	// the caller must then drop its connection rather than end the
	// response normally. Closing a body not read to its end aborts the
	// webtask's response (its req and res emit "close"). A streamed call
	// holds its concurrency slot until Close.
	Body io.ReadCloser
	// Streamed tells that Body is a stream (write each piece as it comes,
	// flushing); false: Body is already complete. A streamed Body also
	// has Pending() bool: whether its next Read returns at once (more of
	// the body is there, or its clean end), so that a writer flushes only
	// when the next Read would wait.
	Streamed bool

	body bufferedBody // backs Body for a buffered response (no allocation)
}

// BufferedCall returns a Call whose response is status, header and the
// buffered body b (for runtimes that answer in one chunk, and for fakes).
func BufferedCall(status int, header map[string][]string, b []byte) *Call {
	c := &Call{}
	c.setResponse(status, header, b)
	return c
}

func (c *Call) setStream(status int, header map[string][]string, b *streamBody) {
	c.Status, c.Header, c.Body, c.Streamed = status, header, b, true
}

func (c *Call) setResponse(status int, header map[string][]string, b []byte) {
	c.Status, c.Header = status, header
	c.body = bufferedBody{b: b}
	c.Body = &c.body
}

// bufferedBody reads a byte slice; WriteTo lets io.Copy write it in one
// call without a copy buffer.
type bufferedBody struct {
	b   []byte
	off int
}

func (r *bufferedBody) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

func (r *bufferedBody) WriteTo(w io.Writer) (int64, error) {
	if r.off >= len(r.b) {
		return 0, nil
	}
	n, err := w.Write(r.b[r.off:])
	r.off += n
	return int64(n), err
}

// Close releases the body; reads after it return io.EOF.
func (r *bufferedBody) Close() error {
	r.off = len(r.b)
	return nil
}
