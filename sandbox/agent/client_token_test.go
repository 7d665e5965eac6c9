package agent

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// recvToken reads one token_result line.
func (f *fakeAgent) recvToken() tokenResultMsg {
	f.t.Helper()
	var m tokenResultMsg
	if line := f.recvJSON("token_result", &m); m.Op != "token_result" {
		f.t.Fatalf("bad token_result %q: op %q", line, m.Op)
	}
	return m
}

// refusingTokens is a token handler that sends every refused call's
// reason to refused and answers it 400, and passes the others to serve.
func refusingTokens(refused chan<- error, serve TokenHandler) TokenHandler {
	return func(ctx context.Context, op TokenOp) TokenResult {
		if op.Refused != nil {
			refused <- op.Refused
			return TokenResult{Code: 400, Message: op.Refused.Error()}
		}
		return serve(ctx, op)
	}
}

// TestClientTokenParentFromInvocation: the handler gets the invocation's
// Authority (never part of the invoke message) and identity; calls of
// unknown or finished invocations and non-object claims reach it only as
// refusals (op.Refused) for it to map.
func TestClientTokenParentFromInvocation(t *testing.T) {
	ops := make(chan TokenOp, 4)
	refused := make(chan error, 4)
	h := refusingTokens(refused, func(ctx context.Context, op TokenOp) TokenResult {
		ops <- op
		if op.URL {
			return TokenResult{Token: "child", URL: "http://x/api/run/box?key=child"}
		}
		return TokenResult{Token: "child"}
	})
	c, f := newFakeWith(t, WithTokens(h, deadline))
	req := &Request{Container: "box", Name: "task", ReqID: "r9", CodeHash: "h", Code: "x",
		Headers: map[string][]string{"host": {"h:1"}}, Authority: "parent-jwt"}
	ch := goDo(c, context.Background(), req)
	m := f.recv()
	id := itoa(m.ID) + `,"cap":"` + m.Cap + `"`

	f.send(`{"op":"token","id":` + id + `,"sid":1,"claims":{"ten":"box","dd":0}}`)
	if r := f.recvToken(); r.Sid != 1 || r.Code != 0 || r.Token != "child" || r.URL != "" {
		t.Fatalf("create_token answered %+v", r)
	}
	op := <-ops
	if op.Authority != "parent-jwt" || op.Container != "box" || op.Name != "task" || op.ReqID != "r9" ||
		string(op.Claims) != `{"ten":"box","dd":0}` || op.URL || op.Headers["host"][0] != "h:1" {
		t.Fatalf("op %+v", op)
	}
	f.send(`{"op":"token","id":` + id + `,"sid":2,"claims":{},"as_url":true}`)
	if r := f.recvToken(); r.Sid != 2 || r.URL == "" || r.Token != "child" {
		t.Fatalf("create_token_url answered %+v", r)
	}
	if op = <-ops; !op.URL {
		t.Fatalf("op %+v, want URL", op)
	}
	for sid, claims := range map[int]string{3: `[1]`, 4: `"s"`} {
		f.send(`{"op":"token","id":` + id + `,"sid":` + itoa(uint64(sid)) + `,"claims":` + claims + `}`)
		if r := f.recvToken(); r.Sid != uint64(sid) || r.Code != 400 {
			t.Fatalf("claims %s answered %+v", claims, r)
		}
		if err := <-refused; !errors.Is(err, ErrTokenOptions) {
			t.Fatalf("claims %s refused with %v", claims, err)
		}
	}
	f.send(`{"op":"token","id":424242,"sid":5,"claims":{}}`)
	if r := f.recvToken(); r.Sid != 5 || r.Code != 400 {
		t.Fatalf("unknown invocation answered %+v", r)
	}
	if err := <-refused; !errors.Is(err, ErrTokenNotRunning) {
		t.Fatalf("unknown invocation refused with %v", err)
	}
	f.send(`{"op":"result","id":` + id + `,"status":200}`)
	if r := wait(t, ch); r.err != nil {
		t.Fatal(r.err)
	}
	f.send(`{"op":"token","id":` + id + `,"sid":6,"claims":{}}`)
	if r := f.recvToken(); r.Sid != 6 || r.Code != 400 {
		t.Fatalf("finished invocation answered %+v", r)
	}
	if err := <-refused; !errors.Is(err, ErrTokenNotRunning) {
		t.Fatalf("finished invocation refused with %v", err)
	}
	select {
	case op := <-ops:
		t.Fatalf("handler reached by a refused call: %+v", op)
	default:
	}
}

func TestClientTokenWithoutHandler(t *testing.T) {
	c, f := newFakeWith(t)
	_ = goDo(c, context.Background(), &Request{Container: "box", CodeHash: "h", Code: "x", Authority: "p"})
	m := f.recv()
	f.send(`{"op":"token","id":` + itoa(m.ID) + `,"cap":"` + m.Cap + `","sid":1,"claims":{}}`)
	if r := f.recvToken(); r.Code != 503 {
		t.Fatalf("no handler answered %+v", r)
	}
}

// TestAuthorityNeverOnTheWire: both encoders leave Request.Authority out.
func TestAuthorityNeverOnTheWire(t *testing.T) {
	r := &Request{ReqID: "r", Container: "c", CodeHash: "h", Code: "x", Token: "tok", Authority: "secret-parent-token"}
	b, err := appendInvoke(nil, 1, testCap, r, true)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("secret-parent-token")) || bytes.Contains(encodeStd(t, 1, testCap, r, true), []byte("secret-parent-token")) {
		t.Fatalf("the invoke message carries the authority: %s", b)
	}
	fx, err := EncodeFixed(r)
	if err != nil {
		t.Fatal(err)
	}
	r.Fixed = fx
	if b, err = appendInvoke(nil, 1, testCap, r, true); err != nil || bytes.Contains(b, []byte("secret-parent-token")) {
		t.Fatalf("the fixed invoke message carries the authority: %s %v", b, err)
	}
}

// TestClientCallsNeedTheInvocationsCapability: invocation ids are
// sequential, so a storage or token call naming another pending
// invocation's id, with its own capability, a wrong one or none, is
// refused like a call of no invocation; the handler never sees the other
// invocation's identity or authority.
func TestClientCallsNeedTheInvocationsCapability(t *testing.T) {
	refusedTok := make(chan error, 8)
	refusedSto := make(chan error, 8)
	tok := refusingTokens(refusedTok, func(ctx context.Context, op TokenOp) TokenResult {
		return TokenResult{Token: "child-of-" + op.Authority}
	})
	sto := refusingStorage(refusedSto, func(ctx context.Context, op StorageOp) StorageResult {
		return StorageResult{Doc: op.Name}
	})
	c, f := newFakeWith(t, WithTokens(tok, deadline), WithStorage(sto, deadline))
	victim := goDo(c, context.Background(), &Request{Container: "box", Name: "victim", CodeHash: "h", Code: "x", Authority: "victim-jwt"})
	mv := f.recv()
	attacker := goDo(c, context.Background(), &Request{Container: "box", Name: "attacker", CodeHash: "h", Code: "x", Authority: "attacker-jwt"})
	ma := f.recv()
	if mv.Cap == "" || ma.Cap == "" || mv.Cap == ma.Cap || len(ma.Cap) < 26 {
		t.Fatalf("capabilities %q and %q: want distinct random ones", mv.Cap, ma.Cap)
	}
	victimID := itoa(mv.ID)
	for i, ref := range []string{
		`"id":` + victimID + `,"cap":"` + ma.Cap + `"`, // the attacker's own capability
		`"id":` + victimID + `,"cap":"` + mv.Cap[:len(mv.Cap)-1] + `x"`,
		`"id":` + victimID + `,"cap":""`,
		`"id":` + victimID,
	} {
		sid := itoa(uint64(10 + 2*i))
		f.send(`{"op":"token",` + ref + `,"sid":` + sid + `,"claims":{}}`)
		if r := f.recvToken(); r.Code != 400 || r.Token != "" {
			t.Fatalf("token call %d (%s) answered %+v", i, ref, r)
		}
		if err := <-refusedTok; !errors.Is(err, ErrTokenNotRunning) {
			t.Fatalf("token call %d refused with %v", i, err)
		}
		sid = itoa(uint64(11 + 2*i))
		f.send(`{"op":"storage",` + ref + `,"sid":` + sid + `,"action":"get"}`)
		if r := f.recvStorage(); r.Code != 400 || r.Data != nil {
			t.Fatalf("storage call %d (%s) answered %+v", i, ref, r)
		}
		if err := <-refusedSto; !errors.Is(err, ErrStorageNotRunning) {
			t.Fatalf("storage call %d refused with %v", i, err)
		}
	}
	// The right capability works.
	f.send(`{"op":"token","id":` + victimID + `,"cap":"` + mv.Cap + `","sid":99,"claims":{}}`)
	if r := f.recvToken(); r.Code != 0 || r.Token != "child-of-victim-jwt" {
		t.Fatalf("the owner's call answered %+v", r)
	}
	f.send(`{"op":"result","id":` + victimID + `,"status":200}`)
	f.send(`{"op":"result","id":` + itoa(ma.ID) + `,"status":200}`)
	wait(t, victim)
	wait(t, attacker)
}
