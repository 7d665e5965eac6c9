package agent

import (
	"bytes"
	"fmt"
	"io"
)

// lineBufBytes is the read buffer of a channel; a message longer than
// this grows it (up to maxLineBytes) until the message was dispatched.
const lineBufBytes = 64 << 10

// lineReader splits the agent's byte stream into messages (lines ending
// in "\n") for whichever goroutine holds the client's reader (lead.go).
// Unlike bufio.Reader it loses nothing when a read fails: a read
// interrupted by a deadline leaves a partial message buffered for the next
// holder.
type lineReader struct {
	r     io.Reader
	buf   []byte
	start int // first byte not yet returned by next
	end   int // end of the bytes read
	scan  int // buf[start:scan] holds no '\n'
}

// next returns the next complete message when one is buffered, without
// reading. The slice is valid until the next fill.
func (lr *lineReader) next() ([]byte, bool) {
	i := bytes.IndexByte(lr.buf[lr.scan:lr.end], '\n')
	if i < 0 {
		lr.scan = lr.end
		return nil, false
	}
	n := lr.scan + i + 1
	line := lr.buf[lr.start:n]
	lr.start, lr.scan = n, n
	return line, true
}

// partial reports whether part of a message is buffered.
func (lr *lineReader) partial() bool { return lr.end > lr.start }

// fill reads once (blocking) after making room. Bytes read are kept
// whatever the error. A message that cannot end within maxLineBytes is an
// ErrProtocol error.
func (lr *lineReader) fill() error {
	switch {
	case lr.start == lr.end:
		// Nothing pending: start over, and give back a grown buffer.
		lr.start, lr.end, lr.scan = 0, 0, 0
		if len(lr.buf) == 0 || len(lr.buf) > 1<<20 {
			lr.buf = make([]byte, lineBufBytes)
		}
	case lr.end == len(lr.buf) && lr.start > 0:
		n := copy(lr.buf, lr.buf[lr.start:lr.end])
		lr.scan -= lr.start
		lr.start, lr.end = 0, n
	case lr.end == len(lr.buf):
		if lr.end >= maxLineBytes {
			return fmt.Errorf("agent message longer than %d bytes: %w", maxLineBytes, ErrProtocol)
		}
		grown := make([]byte, min(2*len(lr.buf), maxLineBytes))
		copy(grown, lr.buf[:lr.end])
		lr.buf = grown
	}
	n, err := lr.r.Read(lr.buf[lr.end:])
	lr.end += n
	return err
}
