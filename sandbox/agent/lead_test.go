package agent

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// newLeadFake is newFake with the reader never taken back by the read
// loop once free (its grace an hour: the test decides who reads) and a
// signal each time a waiting goroutine starts leading.
func newLeadFake(t *testing.T) (*Client, *fakeAgent, <-chan struct{}) {
	t.Helper()
	led := make(chan struct{}, 16)
	a, b := net.Pipe()
	c := NewClient(a, nil, withIdleGrace(time.Hour), withLeadHook(func() { led <- struct{}{} }))
	t.Cleanup(func() { c.Close(); b.Close() })
	return c, &fakeAgent{t: t, conn: b, br: bufio.NewReader(b)}, led
}

// waitLed waits for a goroutine to start leading.
func waitLed(t *testing.T, led <-chan struct{}) {
	t.Helper()
	select {
	case <-led:
	case <-time.After(deadline):
		t.Fatal("no waiting goroutine read the channel itself")
	}
}

// goAborts reads n messages in the background (a Do that gives up writes
// its abort before it returns) and checks that each aborts id.
func (f *fakeAgent) goAborts(id uint64, n int) <-chan error {
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			_ = f.conn.SetReadDeadline(time.Now().Add(deadline))
			line, err := f.br.ReadBytes('\n')
			if err == nil && !strings.Contains(string(line), `"op":"abort","id":`+itoa(id)+`}`) {
				err = errors.New("not the abort: " + string(line))
			}
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	return errc
}

// answer plays one call: the invoke, then a 200 result.
func (f *fakeAgent) answer() {
	f.t.Helper()
	m := f.recv()
	f.send(`{"op":"result","id":` + itoa(m.ID) + `,"status":200}`)
}

// warm makes the read loop give the reader up: it delivers the first
// call's result and then no one waits.
func warm(t *testing.T, c *Client, f *fakeAgent) {
	t.Helper()
	ch := goDo(c, context.Background(), &Request{Method: "GET", URL: "/"})
	f.answer()
	if r := wait(t, ch); r.err != nil || r.resp.Status != 200 {
		t.Fatalf("warm-up call: %+v %v", r.resp, r.err)
	}
}

// startLeading returns a client whose read loop left the reader and a
// call to it that then leads, waiting for the answer to its invoke m.
func startLeading(t *testing.T) (c *Client, f *fakeAgent, led <-chan struct{}, ch <-chan doResult, m invokeMsg) {
	t.Helper()
	c, f, led = newLeadFake(t)
	warm(t, c, f)
	ch = goDo(c, context.Background(), &Request{Method: "GET", URL: "/"})
	m = f.recv()
	waitLed(t, led)
	return c, f, led, ch, m
}

// TestLeaderReadsItsOwnReply: once the read loop left the reader, each
// call of a caller calling in turn reads its reply itself.
func TestLeaderReadsItsOwnReply(t *testing.T) {
	c, f, led := newLeadFake(t)
	warm(t, c, f)
	for i := 0; i < 3; i++ {
		ch := goDo(c, context.Background(), &Request{Method: "GET", URL: "/"})
		m := f.recv()
		waitLed(t, led)
		f.send(`{"op":"log","id":` + itoa(m.ID) + `,"stream":"stdout","msg":"x"}` + "\n" +
			`{"op":"result","id":` + itoa(m.ID) + `,"status":201}`)
		if r := wait(t, ch); r.err != nil || r.resp.Status != 201 {
			t.Fatalf("call %d: %+v %v", i, r.resp, r.err)
		}
	}
}

// TestLeaderWithFollower: a call that finds a leader waits as a follower.
// The leader's reply first: the reader passes to the read loop, which
// delivers the follower's (left free, the reader would never read it: the
// read loop's grace is an hour here). The follower's reply first: the
// leader reads it and hands it over.
func TestLeaderWithFollower(t *testing.T) {
	for _, leaderFirst := range []bool{true, false} {
		c, f, _, leader, m1 := startLeading(t)
		follower := goDo(c, context.Background(), &Request{Method: "GET", URL: "/2"})
		m2 := f.recv()
		order := []struct {
			id     uint64
			status int
			ch     <-chan doResult
		}{{m1.ID, 201, leader}, {m2.ID, 202, follower}}
		if !leaderFirst {
			order[0], order[1] = order[1], order[0]
		}
		for _, o := range order {
			f.send(`{"op":"result","id":` + itoa(o.id) + `,"status":` + itoa(uint64(o.status)) + `}`)
			if r := wait(t, o.ch); r.err != nil || r.resp.Status != o.status {
				t.Fatalf("leader first %v, call %d: %+v %v", leaderFirst, o.id, r.resp, r.err)
			}
		}
	}
}

// TestLeaderInterrupted: a leader blocked in Read ends with its context,
// its timeout and its request body's failure; the channel stays usable
// and a partial message read before the interruption is not lost.
func TestLeaderInterrupted(t *testing.T) {
	c, f, led := newLeadFake(t)
	warm(t, c, f)

	ctx, cancel := context.WithCancel(context.Background())
	ch := goDo(c, ctx, &Request{Method: "GET", URL: "/"})
	m := f.recv()
	waitLed(t, led)
	aborted := f.goAborts(m.ID, 1)
	cancel()
	if r := wait(t, ch); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled leader: %+v %v", r.resp, r.err)
	}
	if err := <-aborted; err != nil {
		t.Fatalf("after cancel: %v", err)
	}

	tch := make(chan doResult, 1)
	go func() {
		resp, err := c.DoTimeout(context.Background(), &Request{Method: "GET", URL: "/"}, time.Millisecond)
		tch <- doResult{resp, err}
	}()
	aborted = f.goAborts(f.recv().ID, 1)
	waitLed(t, led)
	if r := wait(t, tch); !errors.Is(r.err, ErrTimeout) {
		t.Fatalf("leader past its timeout: %+v %v", r.resp, r.err)
	}
	if err := <-aborted; err != nil {
		t.Fatalf("after the timeout: %v", err)
	}

	pr, pw := io.Pipe()
	bch := goDo(c, context.Background(), &Request{Method: "POST", URL: "/", BodyMore: pr})
	mb := f.recv()
	waitLed(t, led)
	// Credit for the body, half a message, then the body fails while the
	// leader waits (the pump and the Do each send an abort).
	f.send(`{"op":"req_credit","id":` + itoa(mb.ID) + `,"n":100}`)
	if _, err := f.conn.Write([]byte(`{"op":"log","id":` + itoa(mb.ID) + `,"stream":"stdout",`)); err != nil {
		t.Fatal(err)
	}
	aborted = f.goAborts(mb.ID, 2)
	pw.CloseWithError(errors.New("client went away"))
	if r := wait(t, bch); !errors.Is(r.err, ErrRequestBody) {
		t.Fatalf("leader with a failed body: %+v %v", r.resp, r.err)
	}
	if err := <-aborted; err != nil {
		t.Fatalf("after the body failed: %v", err)
	}

	// The channel works; the half message was kept and completes now.
	ch = goDo(c, context.Background(), &Request{Method: "GET", URL: "/"})
	m = f.recv()
	f.send(`"msg":"x"}` + "\n" + `{"op":"result","id":` + itoa(m.ID) + `,"status":203}`)
	if r := wait(t, ch); r.err != nil || r.resp.Status != 203 {
		t.Fatalf("after interruptions: %+v %v (channel error %v)", r.resp, r.err, c.Err())
	}
}

// TestLeaderSeesClose: Close ends a leader's wait with ErrClosed.
func TestLeaderSeesClose(t *testing.T) {
	c, _, _, ch, _ := startLeading(t)
	go c.Close()
	if r := wait(t, ch); !errors.Is(r.err, ErrClosed) {
		t.Fatalf("leader after Close: %+v %v", r.resp, r.err)
	}
}

// TestStreamNextLeads: a streamed body's reader reads the channel itself,
// and Abort ends its wait.
func TestStreamNextLeads(t *testing.T) {
	_, f, led, ch, m := startLeading(t)
	f.send(`{"op":"head","id":` + itoa(m.ID) + `,"status":200,"headers":{}}` + "\n" +
		`{"op":"chunk","id":` + itoa(m.ID) + `,"body":"QQ=="}`)
	r := wait(t, ch)
	if r.err != nil || r.resp.Stream == nil {
		t.Fatalf("head: %+v %v", r.resp, r.err)
	}
	st := r.resp.Stream
	if b, err := st.Next(); err != nil || string(b) != "A" {
		t.Fatalf("first chunk %q %v", b, err)
	}
	next := make(chan error, 1)
	go func() {
		b, err := st.Next()
		if err == nil && string(b) != "B" {
			err = errors.New("chunk " + string(b))
		}
		next <- err
	}()
	waitLed(t, led)
	f.send(`{"op":"chunk","id":` + itoa(m.ID) + `,"body":"Qg=="}`)
	if err := <-next; err != nil {
		t.Fatalf("second chunk: %v", err)
	}
	go func() { _, err := st.Next(); next <- err }()
	waitLed(t, led)
	boom := errors.New("client went away")
	go st.Abort(boom)
	select {
	case err := <-next:
		if !errors.Is(err, boom) {
			t.Fatalf("Next after Abort: %v", err)
		}
	case <-time.After(deadline):
		t.Fatal("Abort did not end a leading Next")
	}
	var abort map[string]any
	if f.recvJSON("abort", &abort); abort["op"] != "abort" {
		t.Fatalf("after Abort: %v", abort)
	}
}

// TestIdleChannelStillRead: with no call waiting, a log line and the
// agent's exit are read all the same (the read loop takes the free reader
// back after its grace).
func TestIdleChannelStillRead(t *testing.T) {
	logs := make(chan LogLine, 1)
	c, f := newFake(t, func(l LogLine) { logs <- l })
	warm(t, c, f)
	ch := goDo(c, context.Background(), &Request{Method: "GET", URL: "/"})
	f.answer() // led: the reader is free after it
	wait(t, ch)
	f.send(`{"op":"log","id":1,"stream":"stdout","msg":"late"}`)
	select {
	case l := <-logs:
		if l.Msg != "late" {
			t.Fatalf("log %+v", l)
		}
	case <-time.After(deadline):
		t.Fatal("a log line of an idle channel was not read")
	}
	f.conn.Close()
	select {
	case <-c.Done():
	case <-time.After(deadline):
		t.Fatal("the agent's exit was not noticed on an idle channel")
	}
	if err := c.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Err %v", err)
	}
}

// TestAnsweredTwiceIsProtocolError: two answers to one invoke before its
// Do took the first close the channel (the reader never waits on a Do,
// which may be itself).
func TestAnsweredTwiceIsProtocolError(t *testing.T) {
	c, f, _, ch, m := startLeading(t)
	f.send(`{"op":"need_code","id":` + itoa(m.ID) + `}` + "\n" + `{"op":"result","id":` + itoa(m.ID) + `,"status":200}`)
	r := wait(t, ch)
	if r.err == nil {
		t.Fatalf("Do succeeded: %+v", r.resp)
	}
	wantProtocolClose(t, c)
}

// chopReader returns its text a few bytes per Read, with a deadline
// error between reads.
type chopReader struct {
	text    string
	timeout bool
}

func (r *chopReader) Read(p []byte) (int, error) {
	if r.timeout = !r.timeout; r.timeout {
		return 0, os.ErrDeadlineExceeded
	}
	if r.text == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 3)], r.text)
	r.text = r.text[n:]
	return n, nil
}

// TestLineReader: messages split across reads and interrupted reads come
// out whole; a message longer than its buffer grows it; one that cannot
// end within maxLineBytes is refused.
func TestLineReader(t *testing.T) {
	long := strings.Repeat("x", 3*lineBufBytes)
	text := "a\nbcdef\n\n" + long + "\nlast\ntrunc"
	lr := lineReader{r: &chopReader{text: text}}
	var got []string
	var err error
	for err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		for {
			line, ok := lr.next()
			if !ok {
				break
			}
			got = append(got, string(line))
		}
		err = lr.fill()
	}
	want := []string{"a\n", "bcdef\n", "\n", long + "\n", "last\n"}
	if !errors.Is(err, io.EOF) || !lr.partial() || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("err %v partial %v, %d lines %.40q", err, lr.partial(), len(got), got)
	}

	lr = lineReader{r: strings.NewReader(strings.Repeat("y", maxLineBytes+1))}
	for err = nil; err == nil; err = lr.fill() {
		if _, ok := lr.next(); ok {
			t.Fatal("a line without an end")
		}
	}
	if !errors.Is(err, ErrProtocol) {
		t.Fatalf("too long: %v", err)
	}
}

// plainConn hides everything of a net.Conn but Read, Write and Close.
type plainConn struct{ c net.Conn }

func (p plainConn) Read(b []byte) (int, error)  { return p.c.Read(b) }
func (p plainConn) Write(b []byte) (int, error) { return p.c.Write(b) }
func (p plainConn) Close() error                { return p.c.Close() }

// TestNoDeadlinesNoLeaders: on a conn that cannot interrupt a Read no
// caller leads (it could not be woken for its context's end); the read
// loop reads everything, never leaving it.
func TestNoDeadlinesNoLeaders(t *testing.T) {
	led := make(chan struct{}, 16)
	a, b := net.Pipe()
	c := NewClient(plainConn{a}, nil, withIdleGrace(time.Hour), withLeadHook(func() { led <- struct{}{} }))
	t.Cleanup(func() { c.Close(); b.Close() })
	f := &fakeAgent{t: t, conn: b, br: bufio.NewReader(b)}
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		ch := goDo(c, ctx, &Request{Method: "GET", URL: "/"})
		m := f.recv()
		if i == 2 {
			// A follower's context still ends its wait.
			aborted := f.goAborts(m.ID, 1)
			cancel()
			if r := wait(t, ch); !errors.Is(r.err, context.Canceled) {
				t.Fatalf("cancelled call: %+v %v", r.resp, r.err)
			}
			if err := <-aborted; err != nil {
				t.Fatal(err)
			}
			break
		}
		f.send(`{"op":"result","id":` + itoa(m.ID) + `,"status":200}`)
		if r := wait(t, ch); r.err != nil || r.resp.Status != 200 {
			t.Fatalf("call %d: %+v %v", i, r.resp, r.err)
		}
		cancel()
	}
	select {
	case <-led:
		t.Fatal("a call led on a conn without read deadlines")
	default:
	}
}
