package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"strings"
	"testing"
	"time"
)

const deadline = 10 * time.Second

// fakeAgent is the far end of a net.Pipe that a test scripts by hand.
type fakeAgent struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func newFake(t *testing.T, onLog func(LogLine)) (*Client, *fakeAgent) {
	t.Helper()
	a, b := net.Pipe()
	c := NewClient(a, onLog)
	t.Cleanup(func() { c.Close(); b.Close() })
	return c, &fakeAgent{t: t, conn: b, br: bufio.NewReader(b)}
}

func (f *fakeAgent) send(line string) {
	f.t.Helper()
	_ = f.conn.SetWriteDeadline(time.Now().Add(deadline))
	if _, err := f.conn.Write([]byte(line + "\n")); err != nil {
		f.t.Fatalf("fake agent write: %v", err)
	}
}

// recv reads one invoke message.
func (f *fakeAgent) recv() invokeMsg {
	f.t.Helper()
	var m invokeMsg
	f.recvJSON("invoke", &m)
	return m
}

// recvJSON reads one line (bounded by deadline) into m, a message of kind
// what, and returns the line.
func (f *fakeAgent) recvJSON(what string, m any) []byte {
	f.t.Helper()
	_ = f.conn.SetReadDeadline(time.Now().Add(deadline))
	line, err := f.br.ReadBytes('\n')
	if err != nil {
		f.t.Fatalf("fake agent read: %v", err)
	}
	if err := json.Unmarshal(line, m); err != nil {
		f.t.Fatalf("bad %s %q: %v", what, line, err)
	}
	return line
}

type doResult struct {
	resp *Response
	err  error
}

func goDo(c *Client, ctx context.Context, r *Request) <-chan doResult {
	ch := make(chan doResult, 1)
	go func() {
		resp, err := c.Do(ctx, r)
		ch <- doResult{resp, err}
	}()
	return ch
}

func wait(t *testing.T, ch <-chan doResult) doResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(deadline):
		t.Fatal("Do did not return")
		return doResult{}
	}
}

func TestClientResultAndNeedCode(t *testing.T) {
	c, f := newFake(t, nil)
	ctx := context.Background()
	req := &Request{CodeHash: "h1", Code: "code-1", Method: "GET", URL: "/"}

	ch := goDo(c, ctx, req)
	m := f.recv()
	if m.Op != "invoke" || m.ID == 0 || m.Req.Code != "code-1" {
		t.Fatalf("first invoke %+v", m)
	}
	f.send(`{"op":"result","id":` + itoa(m.ID) + `,"status":201,"headers":{"x":["MQ==","Mg=="]},"body":"aGk="}`)
	r := wait(t, ch)
	if r.err != nil || r.resp.Status != 201 || string(r.resp.Body) != "hi" || len(r.resp.Headers["x"]) != 2 {
		t.Fatalf("got %+v %v", r.resp, r.err)
	}

	// Second call: code omitted; the fake asks for it; the resend has it.
	ch = goDo(c, ctx, req)
	m = f.recv()
	if m.Req.Code != "" || m.Req.CodeHash != "h1" {
		t.Fatalf("second invoke carried code: %+v", m.Req)
	}
	if req.Code != "code-1" {
		t.Fatal("Do modified the caller's request")
	}
	f.send(`{"op":"need_code","id":` + itoa(m.ID) + `}`)
	m2 := f.recv()
	if m2.ID != m.ID || m2.Req.Code != "code-1" {
		t.Fatalf("resend %+v", m2)
	}
	f.send(`{"op":"result","id":` + itoa(m.ID) + `,"status":200}`)
	if r := wait(t, ch); r.err != nil || r.resp.Status != 200 {
		t.Fatalf("got %+v %v", r.resp, r.err)
	}
	// A result for an unknown id is ignored, the channel stays up.
	f.send(`{"op":"result","id":999,"status":200}`)
	ch = goDo(c, ctx, &Request{CodeHash: "h2", Code: "c2"})
	m = f.recv()
	f.send(`{"op":"result","id":` + itoa(m.ID) + `,"status":204}`)
	if r := wait(t, ch); r.err != nil || r.resp.Status != 204 {
		t.Fatalf("got %+v %v", r.resp, r.err)
	}
}

func TestClientNeedCodeTwiceIsProtocolError(t *testing.T) {
	c, f := newFake(t, nil)
	ch := goDo(c, context.Background(), &Request{CodeHash: "h", Code: "x"})
	m := f.recv()
	f.send(`{"op":"need_code","id":` + itoa(m.ID) + `}`)
	if r := wait(t, ch); !errors.Is(r.err, ErrProtocol) {
		t.Fatalf("err = %v, want ErrProtocol", r.err)
	}
}

func TestClientMalformedLinesCloseTheChannel(t *testing.T) {
	for _, line := range []string{
		`{not json`,
		`{"op":"bogus"}`,
		`{"op":"result","status":200}`,
		`{"op":"result","id":1,"status":0}`,
		`"just a string"`,
	} {
		t.Run(line, func(t *testing.T) {
			c, f := newFake(t, nil)
			ch := goDo(c, context.Background(), &Request{CodeHash: "h", Code: "x"})
			f.recv()
			f.send(line)
			r := wait(t, ch)
			if !errors.Is(r.err, ErrClosed) {
				t.Fatalf("pending Do err = %v, want ErrClosed", r.err)
			}
			wantProtocolClose(t, c)
		})
	}
}

func TestClientReadyAndClose(t *testing.T) {
	c, f := newFake(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.WaitReady(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReady without ready: %v", err)
	}
	f.send(`{"op":"ready","pid":1,"node":"v20.0.0"}`)
	r, err := c.WaitReady(context.Background())
	if err != nil || r.Pid != 1 || r.Node != "v20.0.0" {
		t.Fatalf("ready %+v %v", r, err)
	}
	ch := goDo(c, context.Background(), &Request{CodeHash: "h", Code: "x"})
	f.recv()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r := wait(t, ch); !errors.Is(r.err, ErrClosed) {
		t.Fatalf("pending Do after Close: %v", r.err)
	}
	if _, err := c.Do(context.Background(), &Request{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Do after Close: %v", err)
	}
}

func TestClientEOFBeforeReady(t *testing.T) {
	c, f := newFake(t, nil)
	f.conn.Close()
	if _, err := c.WaitReady(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitReady after EOF: %v", err)
	}
}

func TestClientSlowLogConsumerDrops(t *testing.T) {
	block := make(chan struct{})
	got := make(chan LogLine, 1)
	c, f := newFake(t, func(l LogLine) {
		select {
		case got <- l:
		default:
		}
		<-block
	})
	defer close(block)
	ch := goDo(c, context.Background(), &Request{CodeHash: "h", Code: "x"})
	m := f.recv()
	const n = logBuffer + 100
	var sb strings.Builder
	for i := 0; i < n; i++ {
		sb.WriteString(`{"op":"log","id":` + itoa(m.ID) + `,"req_id":"r","stream":"stdout","msg":"m"}` + "\n")
	}
	f.send(strings.TrimSuffix(sb.String(), "\n"))
	f.send(`{"op":"result","id":` + itoa(m.ID) + `,"status":200}`)
	if r := wait(t, ch); r.err != nil {
		t.Fatalf("Do blocked or failed behind a slow log consumer: %v", r.err)
	}
	if l := <-got; l.ReqID != "r" || l.Msg != "m" || l.ID != m.ID {
		t.Fatalf("log line %+v", l)
	}
}

func TestClientLongLine(t *testing.T) {
	c, f := newFake(t, nil)
	ch := goDo(c, context.Background(), &Request{CodeHash: "h", Code: "x"})
	m := f.recv()
	big := strings.Repeat("QUJD", 100000) // 400 KB of base64, beyond the reader's buffer
	go f.send(`{"op":"result","id":` + itoa(m.ID) + `,"status":200,"body":"` + big + `"}`)
	r := wait(t, ch)
	if r.err != nil || len(r.resp.Body) != 300000 {
		t.Fatalf("got %v, body %d bytes", r.err, len(r.resp.Body))
	}
}

// wantProtocolClose waits for c to close for a protocol violation.
func wantProtocolClose(t *testing.T, c *Client) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(deadline):
		t.Fatal("Done not closed")
	}
	if !errors.Is(c.Err(), ErrProtocol) {
		t.Fatalf("Err() = %v, want ErrProtocol", c.Err())
	}
}

func itoa(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestClientUnencodableRequestKeepsChannel(t *testing.T) {
	c, f := newFake(t, nil)
	_, err := c.Do(context.Background(), &Request{CodeHash: "h", Code: "x", Secrets: map[string]any{"n": math.NaN()}})
	if err == nil || errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want an encoding error that leaves the channel open", err)
	}
	ch := goDo(c, context.Background(), &Request{CodeHash: "h", Code: "x"})
	m := f.recv()
	if m.Req.Code != "x" {
		t.Fatalf("code not sent after the failed encode: %+v", m.Req)
	}
	f.send(`{"op":"result","id":` + itoa(m.ID) + `,"status":200}`)
	if r := wait(t, ch); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestClientDoTimeout(t *testing.T) {
	c, f := newFake(t, nil)
	// Answered in time: the result, and the pooled timer is stopped.
	ch := make(chan doResult, 1)
	go func() {
		resp, err := c.DoTimeout(context.Background(), &Request{CodeHash: "h", Code: "x"}, time.Hour)
		ch <- doResult{resp, err}
	}()
	m := f.recv()
	f.send(`{"op":"result","id":` + itoa(m.ID) + `,"status":201,"headers":{},"body":""}`)
	if r := wait(t, ch); r.err != nil || r.resp.Status != 201 {
		t.Fatalf("in time: %+v %v", r.resp, r.err)
	}
	// Never answered: ErrTimeout, the channel stays open.
	go func() {
		resp, err := c.DoTimeout(context.Background(), &Request{CodeHash: "h"}, 50*time.Millisecond)
		ch <- doResult{resp, err}
	}()
	late := f.recv()
	// The agent is told to abort it (net.Pipe: read before Do returns).
	if a := f.recv(); a.Op != "abort" || a.ID != late.ID {
		t.Fatalf("after the timeout the agent got %+v, want abort of %d", a, late.ID)
	}
	r := wait(t, ch)
	if !errors.Is(r.err, ErrTimeout) || errors.Is(r.err, ErrClosed) {
		t.Fatalf("unanswered: %v, want ErrTimeout", r.err)
	}
	// A late result for the timed-out call is ignored; later calls work,
	// whatever timer state their pooled call carries.
	f.send(`{"op":"result","id":` + itoa(late.ID) + `,"status":200,"headers":{},"body":""}`)
	for i := range 3 {
		go func() {
			resp, err := c.DoTimeout(context.Background(), &Request{CodeHash: "h"}, time.Hour)
			ch <- doResult{resp, err}
		}()
		m := f.recv()
		f.send(`{"op":"result","id":` + itoa(m.ID) + `,"status":202,"headers":{},"body":""}`)
		if r := wait(t, ch); r.err != nil || r.resp.Status != 202 {
			t.Fatalf("call %d after the timeout: %+v %v", i, r.resp, r.err)
		}
	}
	if err := c.Err(); err != nil {
		t.Fatalf("channel closed: %v", err)
	}
}

// A log line of a pending call names its webtask (from the call's request,
// not from the agent); a line of no known call names none.
func TestClientLogLineNamesWebtask(t *testing.T) {
	got := make(chan LogLine, 2)
	c, f := newFake(t, func(l LogLine) { got <- l })
	ch := goDo(c, context.Background(), &Request{Container: "box", Name: "task", ReqID: "r1", CodeHash: "h", Code: "x"})
	m := f.recv()
	f.send(`{"op":"log","id":` + itoa(m.ID) + `,"req_id":"r1","stream":"stdout","msg":"hi","name":"forged"}`)
	f.send(`{"op":"log","id":999999,"req_id":"r0","stream":"stdout","msg":"stray"}`)
	f.send(`{"op":"result","id":` + itoa(m.ID) + `,"status":200}`)
	if r := wait(t, ch); r.err != nil {
		t.Fatal(r.err)
	}
	for _, want := range []LogLine{{ID: m.ID, ReqID: "r1", Name: "task", Stream: "stdout", Msg: "hi"}, {ID: 999999, ReqID: "r0", Stream: "stdout", Msg: "stray"}} {
		select {
		case l := <-got:
			if l != want {
				t.Errorf("log line %+v, want %+v", l, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("log line not delivered")
		}
	}
}
