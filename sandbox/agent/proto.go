// Package agent speaks the runtime protocol between the daemon and the
// long-lived Node runtime agent (rootfs/agent/, entry point agent.js) inside a sandbox.
//
// # Wire protocol
//
// The channel is one bidirectional byte stream (a unix socketpair handed to
// the agent as file descriptor 3). Every message is one JSON object on one
// line (newline-delimited JSON, "\n" terminated; JSON string escaping
// guarantees no raw newline inside a message). Bodies and header values
// are bytes, base64 on the wire (the agent presents header values as
// Node's latin1 strings). docs/PROTOCOL.md describes the frames and the
// flow control in full. Messages carry an "op":
//
// Agent -> daemon:
//
//	{"op":"ready","pid":1,"node":"v20.20.2"}          once, after boot
//	{"op":"log","id":7,"req_id":"r1","stream":"stdout","msg":"..."}  user output of invocation 7
//	{"op":"result","id":7,"status":200,"headers":{"content-type":["<base64>"]},"body":"<base64>"}
//	{"op":"head","id":7,"status":200,"headers":{...}}  a streamed response starts
//	{"op":"chunk","id":7,"body":"<base64>"}            a piece of it, within credit
//	{"op":"end","id":7}                                its end (or an abort acknowledged)
//	{"op":"req_credit","id":7,"n":262144}              room for more request body
//	{"op":"need_code","id":7}                          the agent has no compiled function for code_hash
//	{"op":"storage","id":7,"cap":"K3…","sid":3,"action":"get"}     ctx.storage.get of invocation 7
//	{"op":"storage","id":7,"cap":"K3…","sid":4,"action":"set","data":"{\"n\":1}","etag":2}
//	{"op":"storage","id":7,"cap":"K3…","sid":5,"action":"set","data":"null","force":true}
//	{"op":"token","id":7,"cap":"K3…","sid":6,"claims":{"ten":"c","dd":0}}             ctx.create_token
//	{"op":"token","id":7,"cap":"K3…","sid":7,"claims":{"ten":"c"},"as_url":true}     ctx.create_token_url
//
// Daemon -> agent:
//
//	{"op":"invoke","id":7,"cap":"K3…","req":{...Request...}}
//	{"op":"credit","id":7,"n":65536}                   room for more response body
//	{"op":"abort","id":7}                              the caller went away or a limit cut it off
//	{"op":"req_chunk","id":7,"body":"<base64>"}        a piece of a streamed request body
//	{"op":"req_end","id":7}
//	{"op":"storage_result","sid":3,"data":"{\"n\":1}","etag":2}   success ("data" absent: nothing stored)
//	{"op":"storage_result","sid":4,"code":409,"message":"...","data":"<current>","etag":3}
//	{"op":"token_result","sid":6,"token":"<jwt>"}                    success
//	{"op":"token_result","sid":7,"token":"<jwt>","url":"http://.../api/run/c?key=<jwt>"}
//	{"op":"token_result","sid":6,"code":400,"message":"..."}
//
// Both ends coalesce writes: the daemon writes the messages of concurrent
// calls in one write, the agent writes everything it sends in one tick in
// one write; a reader splits on "\n" and never assumes one message per
// read. The daemon encodes invoke messages and decodes the usual result
// line by hand (wire.go); the bytes are exactly what encoding/json gives.
//
// Invocation ids are chosen by the daemon, unique per channel, and never 0.
// They are sequential, so they name an invocation but do not stand for it:
// each invoke also carries "cap", a capability the client draws at random
// (crypto/rand, 128 bits) for that invocation alone, and every storage and
// token message must carry the "cap" of the invocation it names. A call
// whose id is not a pending invocation, or whose cap is not that
// invocation's, is refused the same way (no oracle), so code cannot act as
// another invocation by naming its id.
// The agent answers each invoke with exactly one "result", "head" (then
// "chunk"s and one "end") or "need_code"; an abort is acknowledged by
// "end". A streamed response has a window of StreamWindowBytes: the agent
// never sends more body bytes than the credit the daemon granted, and the
// daemon grants it as its reader consumes the body.
// After "need_code" the daemon resends the same invoke with Code set.
// The agent caches compiled functions by CodeHash for its lifetime (bounded).
// A "result" (or "head") always describes an HTTP response: programming-model
// failures (compile errors, thrown exceptions, cb(err)) are rendered by the
// agent as the JSON error bodies of the API reference §3.4.
//
// Per-invocation user output (console.*, process.stdout/stderr writes) is
// attributed with AsyncLocalStorage and sent as one "log" message per write,
// without its trailing newline. It is capped by the agent at
// Request.LogLimitBytes (0: no cap; each message counts its bytes plus one);
// past the cap the agent sends one final log line
// "[webtaskd: log output truncated]" and drops the rest. Output that no
// invocation owns (agent diagnostics, stray timers) goes to the agent's real
// fd 1/2 instead.
//
// # Storage
//
// ctx.storage (and module.webtask.storage) call back into the daemon while
// an invocation runs. The agent numbers its storage calls ("sid", unique
// per agent, never 0) and names the invocation ("id"); the daemon takes the
// webtask's identity (container and name) from its own record of that
// invocation, never from the agent, so code can only reach the storage of
// the webtask it runs as, and only while its invocation has not answered.
// "data" is the document as JSON text; "etag" is the write counter the
// invocation read (0: nothing was ever stored); "force" overwrites. Every
// storage message is answered by exactly one "storage_result" with the
// same sid: without "code" it succeeded (get: "data" and "etag"; set: the
// new "etag"), otherwise "code" is what the webtask sees as err.code (400,
// 404, 409 with the current document in "data"/"etag", 413, 500, 503).
// The daemon answers asynchronously: a slow database never stalls the
// channel.
//
// # Tokens
//
// ctx.create_token(options, cb) and ctx.create_token_url(options, cb) ask
// the daemon for a child token while an invocation runs: "claims" is the
// options object (the body of POST /api/tokens/issue; a string option is
// sent as {"url": string}), "as_url" asks for the webtask URL as well.
// Calls share the storage calls' "sid" numbering, bounds and rules: the
// daemon takes the parent token from its own record of invocation "id"
// (Request.Authority, never sent to the agent), so a webtask can only
// narrow the token it runs under. Each token message is answered by one
// "token_result" with the same sid: "token" (and "url" when asked) on
// success, else "code" and "message" (the HTTP API's status and message
// for the same issue; the webtask sees them as err.code and err.message).
//
// An uncaught exception or unhandled rejection raised by an invocation that
// has not answered yet answers it with 500 "Script generated an unhandled
// asynchronous exception."; the agent keeps serving.
//
// When the channel closes (the daemon went away) the agent exits at once.
package agent

import (
	"context"
	"encoding/json"
	"io"
)

// Request is one invocation of a webtask, as sent to the agent.
type Request struct {
	// ReqID is the request id (ctx.id, x-wt-params.req_id, log records).
	ReqID string `json:"req_id"`
	// Container and Name identify the webtask (Name is empty for unnamed code).
	Container string `json:"container"`
	Name      string `json:"jtn,omitempty"`
	// URLFormat is req.x_wt.url_format: 1 = /api/run/{container}/{jtn}.
	URLFormat int `json:"url_format"`
	// CodeHash is the hex sha256 of Code; the agent's compile-cache key.
	CodeHash string `json:"code_hash"`
	// Code is the webtask source. Omitted (empty) when the daemon believes
	// the agent already compiled CodeHash; see "need_code". Empty code is
	// valid code: the agent knows its hash (sha256 of nothing) and never
	// asks for it.
	Code string `json:"code,omitempty"`
	// Modules resolves the packages the webtask declares (meta
	// wt-node-dependencies): name -> its store key (the tree at
	// /modules/<key>/node_modules), or "!" and why that version is not
	// available ("!@x/y@1.0.0 is queued on this host"). The agent reads it
	// when it compiles, so CodeHash must stand for it too; it is sent with
	// the code only.
	Modules map[string]string `json:"modules,omitempty"`
	// Extensions holds the code of the compiler and middleware URLs the
	// webtask's meta names (wt-compiler, wt-middleware), fetched by the
	// daemon (sandboxes have no network): URL -> code. Like Modules it is
	// read when compiling, sent with the code only, and CodeHash stands
	// for it.
	Extensions map[string]string `json:"extensions,omitempty"`

	Method string `json:"method"`
	// URL is the full original request path and raw query, for example
	// "/api/run/c/n/sub/path?x=1".
	URL string `json:"url"`
	// Headers are the request headers with lower-case names. Values are
	// bytes: JSON strings on the wire when all of a header's values are
	// ASCII, else {"b64":[...]} (the agent presents them as Node does, as
	// latin1 strings).
	Headers map[string][]string `json:"headers"`
	// Body is the raw request body (base64 on the wire).
	Body []byte `json:"body,omitempty"`
	// BodyMore, when set, is the rest of the body after Body: the invoke
	// says "body_more":true and the client streams BodyMore to the agent
	// as "req_chunk" messages within the credit the agent grants, then
	// "req_end". A read error aborts the invocation (ErrRequestBody).
	// The client reads it on its own goroutine until EOF or the
	// invocation's end; the caller must not read it meanwhile.
	BodyMore io.Reader `json:"-"`

	// Secrets (ectx, decrypted), Params (pctx) and Meta of the webtask.
	Secrets map[string]any    `json:"secrets,omitempty"`
	Params  map[string]any    `json:"params,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
	// PB is the parse-body mode (0 never, 1 always, 2 by arity); MB merges
	// the parsed body into ctx.data when 1.
	PB int `json:"pb"`
	MB int `json:"mb"`
	// Token is exposed as ctx.token (the webtask's own token), may be empty.
	Token string `json:"token,omitempty"`
	// Authority is the raw token the invocation runs under: the stored
	// token of a named webtask, the caller's token of an unnamed run.
	// ctx.create_token issues its children from it. Never sent to the
	// agent (it may be wider than what ctx.token exposes).
	Authority string `json:"-"`
	// LogLimitBytes caps this invocation's captured user output.
	LogLimitBytes int `json:"log_limit"`

	// Fixed, when set, is the pre-encoded form of Secrets, Params, Meta,
	// PB, MB and Token (EncodeFixed of this webtask version): the client
	// sends it instead of encoding those fields again. It must describe
	// the same values; it is not sent as a field of its own.
	Fixed *Fixed `json:"-"`
}

// Response is the HTTP response the webtask produced: complete (Body),
// or streamed (Stream not nil, Body empty) when the agent sent its head
// before the end.
type Response struct {
	Status  int
	Headers map[string][]string
	Body    []byte
	// Stream delivers the body of a streamed response; the caller reads
	// it to the end or aborts it, and must Close it.
	Stream *Stream
}

// LogLine is one piece of user output captured by the agent.
type LogLine struct {
	// ID is the invocation the output belongs to, 0 when unknown.
	ID uint64 `json:"id"`
	// ReqID is the Request.ReqID of that invocation ("" when unknown), so
	// that log consumers need no id -> request bookkeeping.
	ReqID string `json:"req_id,omitempty"`
	// Name is the webtask of that invocation ("" when unknown or unnamed),
	// taken from the pending call, not from the agent.
	Name string `json:"name,omitempty"`
	// Stream is "stdout" or "stderr".
	Stream string `json:"stream"`
	Msg    string `json:"msg"`
}

// StorageOp is one ctx.storage call of a running invocation.
type StorageOp struct {
	// Container and Name identify the webtask, from the invocation's
	// Request (Name is empty for unnamed code); ReqID is its request id.
	Container string
	Name      string
	ReqID     string
	// Set is false for get.
	Set bool
	// Doc is the new document's JSON text for set ("null" clears it).
	Doc string
	// Force overwrites regardless of Etag.
	Force bool
	// Etag is, for set without Force, the etag the invocation read (0:
	// it expects nothing stored).
	Etag int64
	// Refused, when not nil, is why the client refused the call itself
	// (ErrStorageNotRunning, ErrStorageBusy, ErrToken…: errdefs kinds). The handler must
	// then only turn it into the result the webtask sees (no I/O), so that
	// every status is chosen by the API's one error mapping.
	Refused error
}

// StorageResult answers a StorageOp.
type StorageResult struct {
	// Code is 0 on success, else the code the webtask sees as err.code.
	Code int
	// Message is err.message (client-safe).
	Message string
	// Doc is the document's JSON text ("" when nothing is stored): the
	// stored one for get, the current one for a 409 conflict.
	Doc string
	// Etag is the etag of Doc (get, conflict) or of the new document (set).
	Etag int64
}

// StorageHandler serves storage calls. It runs on its own goroutine (never
// on the goroutine reading the channel) and must respect ctx; for a
// refused call (op.Refused set) it runs on the reading goroutine (the read
// loop, or a waiting Do or Stream.Next) and must only map the error.
type StorageHandler func(ctx context.Context, op StorageOp) StorageResult

// TokenOp is one ctx.create_token(_url) call of a running invocation.
type TokenOp struct {
	// Container, Name, ReqID and Headers come from the invocation's
	// Request (Headers to build URLs the way the caller reached the
	// daemon); Authority is its Request.Authority, the parent token.
	Container string
	Name      string
	ReqID     string
	Headers   map[string][]string
	Authority string
	// Claims is the requested claims object, raw JSON from the webtask.
	Claims []byte
	// URL asks for the webtask URL (create_token_url) as well.
	URL bool
	// Refused is as in StorageOp (also ErrTokenOptions).
	Refused error
}

// TokenResult answers a TokenOp.
type TokenResult struct {
	// Code is 0 on success, else err.code (an HTTP status).
	Code int
	// Message is err.message (client-safe).
	Message string
	// Token is the raw child JWT; URL its webtask URL (when asked).
	Token string
	URL   string
}

// TokenHandler serves create_token calls, like a StorageHandler: on its
// own goroutine, respecting ctx.
type TokenHandler func(ctx context.Context, op TokenOp) TokenResult

// message is the envelope of every line on the wire.
type message struct {
	Op     string              `json:"op"`
	ID     uint64              `json:"id,omitempty"`
	Cap    string              `json:"cap,omitempty"`
	Req    *Request            `json:"req,omitempty"`
	ReqID  string              `json:"req_id,omitempty"`
	Pid    int                 `json:"pid,omitempty"`
	Node   string              `json:"node,omitempty"`
	Stream string              `json:"stream,omitempty"`
	Msg    string              `json:"msg,omitempty"`
	Status int                 `json:"status,omitempty"`
	Header map[string][][]byte `json:"headers,omitempty"` // values in base64
	Body   []byte              `json:"body,omitempty"`
	// storage
	Sid    uint64 `json:"sid,omitempty"`
	Action string `json:"action,omitempty"`
	Data   string `json:"data,omitempty"`
	Etag   int64  `json:"etag,omitempty"`
	Force  bool   `json:"force,omitempty"`
	// token
	Claims json.RawMessage `json:"claims,omitempty"`
	AsURL  bool            `json:"as_url,omitempty"`
	// req_credit
	N int64 `json:"n,omitempty"`
}

// tokenResultMsg is the daemon -> agent answer to a token call.
type tokenResultMsg struct {
	Op      string `json:"op"`
	Sid     uint64 `json:"sid"`
	Code    int    `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	Token   string `json:"token,omitempty"`
	URL     string `json:"url,omitempty"`
}

// storageResultMsg is the daemon -> agent answer to a storage call.
type storageResultMsg struct {
	Op      string  `json:"op"`
	Sid     uint64  `json:"sid"`
	Code    int     `json:"code,omitempty"`
	Message string  `json:"message,omitempty"`
	Data    *string `json:"data,omitempty"`
	Etag    int64   `json:"etag,omitempty"`
}
