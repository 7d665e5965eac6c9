package agent

import (
	"bufio"
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// recvStorage reads one storage_result line.
func (f *fakeAgent) recvStorage() storageResultMsg {
	f.t.Helper()
	var m storageResultMsg
	if line := f.recvJSON("storage_result", &m); m.Op != "storage_result" {
		f.t.Fatalf("bad storage_result %q: op %q", line, m.Op)
	}
	return m
}

func newFakeWith(t *testing.T, opts ...Option) (*Client, *fakeAgent) {
	t.Helper()
	a, b := net.Pipe()
	c := NewClient(a, nil, opts...)
	t.Cleanup(func() { c.Close(); b.Close() })
	return c, &fakeAgent{t: t, conn: b, br: bufio.NewReader(b)}
}

// refusingStorage is a storage handler that sends every refused call's
// reason to refused and answers it 400, and passes the others to serve.
func refusingStorage(refused chan<- error, serve StorageHandler) StorageHandler {
	return func(ctx context.Context, op StorageOp) StorageResult {
		if op.Refused != nil {
			refused <- op.Refused
			return StorageResult{Code: 400, Message: op.Refused.Error()}
		}
		return serve(ctx, op)
	}
}

// TestClientStorageIdentityFromInvocation: the handler sees the pending
// invocation's container and name; calls of finished or unknown
// invocations are refused without reaching it.
func TestClientStorageIdentityFromInvocation(t *testing.T) {
	ops := make(chan StorageOp, 4)
	refused := make(chan error, 4)
	release := make(chan struct{})
	h := refusingStorage(refused, func(ctx context.Context, op StorageOp) StorageResult {
		ops <- op
		select {
		case <-release:
		case <-ctx.Done():
			return StorageResult{Code: 503, Message: "timeout"}
		}
		return StorageResult{Doc: `{"a":1}`, Etag: 7}
	})
	c, f := newFakeWith(t, WithStorage(h, deadline))
	ch := goDo(c, context.Background(), &Request{Container: "box", Name: "task", ReqID: "r9", CodeHash: "h", Code: "x"})
	m := f.recv()
	id := itoa(m.ID) + `,"cap":"` + m.Cap + `"`

	f.send(`{"op":"storage","id":` + id + `,"sid":1,"action":"get"}`)
	var op StorageOp
	select {
	case op = <-ops:
	case <-time.After(deadline):
		t.Fatal("handler not called")
	}
	if op.Container != "box" || op.Name != "task" || op.ReqID != "r9" || op.Set {
		t.Fatalf("op %+v", op)
	}
	// The read loop is not blocked by the slow handler: a second call for
	// an unknown invocation is answered while the first is still held.
	f.send(`{"op":"storage","id":424242,"sid":2,"action":"set","data":"1","force":true}`)
	if r := f.recvStorage(); r.Sid != 2 || r.Code != 400 {
		t.Fatalf("unknown invocation answered %+v", r)
	}
	if err := <-refused; !errors.Is(err, ErrStorageNotRunning) {
		t.Fatalf("unknown invocation refused with %v", err)
	}
	close(release)
	if r := f.recvStorage(); r.Sid != 1 || r.Code != 0 || r.Data == nil || *r.Data != `{"a":1}` || r.Etag != 7 {
		t.Fatalf("get answered %+v", r)
	}
	f.send(`{"op":"storage","id":` + id + `,"sid":3,"action":"set","data":"{\"b\":2}","etag":7}`)
	if op = <-ops; !op.Set || op.Doc != `{"b":2}` || op.Etag != 7 || op.Force {
		t.Fatalf("set op %+v", op)
	}
	if r := f.recvStorage(); r.Sid != 3 || r.Code != 0 {
		t.Fatalf("set answered %+v", r)
	}
	f.send(`{"op":"result","id":` + id + `,"status":200}`)
	if r := wait(t, ch); r.err != nil {
		t.Fatal(r.err)
	}
	// After the result the invocation has no storage any more.
	f.send(`{"op":"storage","id":` + id + `,"sid":4,"action":"get"}`)
	if r := f.recvStorage(); r.Sid != 4 || r.Code != 400 {
		t.Fatalf("finished invocation answered %+v", r)
	}
	if err := <-refused; !errors.Is(err, ErrStorageNotRunning) {
		t.Fatalf("finished invocation refused with %v", err)
	}
	select {
	case op := <-ops:
		t.Fatalf("handler reached after the result: %+v", op)
	default:
	}
}

func TestClientStorageWithoutHandlerAndProtocol(t *testing.T) {
	c, f := newFakeWith(t)
	ch := goDo(c, context.Background(), &Request{Container: "box", Name: "task", CodeHash: "h", Code: "x"})
	m := f.recv()
	f.send(`{"op":"storage","id":` + itoa(m.ID) + `,"cap":"` + m.Cap + `","sid":1,"action":"get"}`)
	if r := f.recvStorage(); r.Code != 503 {
		t.Fatalf("no handler answered %+v", r)
	}
	// A storage call without sid breaks the protocol: the channel closes.
	f.send(`{"op":"storage","id":` + itoa(m.ID) + `,"cap":"` + m.Cap + `","action":"get"}`)
	if r := wait(t, ch); !errors.Is(r.err, ErrClosed) || !errors.Is(c.Err(), ErrProtocol) {
		t.Fatalf("Do = %v, Err = %v", r.err, c.Err())
	}
}

// TestClientCloseCancelsStorage: Close returns only after running storage
// handlers ended, and they see their context cancelled.
func TestClientCloseCancelsStorage(t *testing.T) {
	started := make(chan struct{})
	ended := make(chan error, 1)
	h := func(ctx context.Context, op StorageOp) StorageResult {
		close(started)
		<-ctx.Done()
		ended <- ctx.Err()
		return StorageResult{}
	}
	c, f := newFakeWith(t, WithStorage(h, time.Hour))
	_ = goDo(c, context.Background(), &Request{Container: "box", Name: "task", CodeHash: "h", Code: "x"})
	m := f.recv()
	f.send(`{"op":"storage","id":` + itoa(m.ID) + `,"cap":"` + m.Cap + `","sid":1,"action":"get"}`)
	select {
	case <-started:
	case <-time.After(deadline):
		t.Fatal("handler not started")
	}
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(deadline):
		t.Fatal("Close did not return")
	}
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler ctx ended with %v", err)
		}
	default:
		t.Fatal("Close returned before the storage handler ended")
	}
}
