'use strict';
// webtaskd runtime agent: the long-lived Node process of one sandbox.
//
// Started as `node --max-old-space-size=N /agent/agent.js` with the runtime
// channel on fd 3 (a unix socket). Speaks newline-delimited JSON; the
// protocol is documented in the Go package sandbox/agent (proto.go). It
// compiles webtask code once per code_hash and runs many invocations
// concurrently, implementing the Auth0 Webtask programming model (1-arity
// cb, 2-arity ctx+cb, 3-arity ctx+req+res; promises; body parsing; results
// and errors rendered as HTTP responses).
//
// Self-contained CommonJS, no npm dependencies, no synchronous fs on the
// hot path.

const net = require('net');
const vm = require('vm');
const http = require('http');
const path = require('path');
const Module = require('module');
const querystring = require('querystring');
const { AsyncLocalStorage, AsyncResource } = require('async_hooks');

// Captured before any user code runs, so user code replacing globals cannot
// break the protocol.
const stringify = JSON.stringify;
const parse = JSON.parse;
const BufferFrom = Buffer.from;
const nextTick = process.nextTick;
// atob/btoa map base64 to latin1 strings (one char per byte) and back:
// exactly the header value conversions, without a Buffer per value.
const atob = globalThis.atob;
const btoa = globalThis.btoa;

const MAX_CACHED_FUNCTIONS = 256;
const TRUNCATION_MARKER = '[webtaskd: log output truncated]';
const MODULES_DIR = process.env.WEBTASKD_MODULES_DIR || '/node_modules';
// MODULE_STORE is the provisioned module store, bound read-only:
// <store>/<sha256(name@version)>/node_modules/<name>, each with its own
// dependency tree.
const MODULE_STORE = process.env.WEBTASKD_MODULE_STORE || '/modules';
const WEBTASK_FILENAME = '/webtask.js';
// MAX_STORAGE_BYTES is the largest storage document (its JSON text), as the
// daemon enforces it: 500 KB.
const MAX_STORAGE_BYTES = 500 * 1024;

// The reference runtime's (webtask-runtime) compile errors, word for word:
// the §3.1 messages as Error strings after "Unable to compile submitted
// JavaScript. ", in error and details.
const ERR_ARITY =
  'Unable to compile submitted JavaScript. Error: The JavaScript function must have one of the following signatures: ([ctx], callback) or (ctx, req, res).';
const ERR_NO_FUNCTION =
  'Unable to compile submitted JavaScript. Error: Supplied code must return or export a function.';
// EMPTY_CODE_HASH is the code_hash (hex sha256) of empty code. Empty code
// is valid code (it exports no function), but an empty code field is
// omitted on the wire like code the agent already has, so its hash alone
// stands for it.
const EMPTY_CODE_HASH = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

// ---------------------------------------------------------------------------
// Channel

const origStdoutWrite = process.stdout.write;
const origStderrWrite = process.stderr.write;

function agentLog(msg) {
  try {
    origStderrWrite.call(process.stderr, 'webtaskd-agent: ' + msg + '\n');
  } catch (_) {
    // nothing left to report to
  }
}

const chan = new net.Socket({ fd: 3, readable: true, writable: true });
chan.setEncoding('utf8');
chan.on('error', () => process.exit(1));
chan.on('end', () => process.exit(0));
chan.on('close', () => process.exit(0));

// Messages written in one tick leave in one write: the first corks the
// channel and a nextTick uncorks it. The write syscall (which wakes the
// daemon) is most of the agent's cost per call; when the daemon sends many
// invocations in one chunk, their results share it.
let corked = false;

function uncork() {
  corked = false;
  chan.uncork();
}

function sendRaw(line) {
  if (!corked) {
    corked = true;
    chan.cork();
    nextTick(uncork);
  }
  chan.write(line);
}

let inbuf = '';
chan.on('data', (chunk) => {
  if (inbuf.length !== 0) {
    chunk = inbuf + chunk;
    inbuf = '';
  }
  let start = 0;
  let nl;
  while ((nl = chunk.indexOf('\n', start)) !== -1) {
    if (nl > start) handleLine(chunk.slice(start, nl));
    start = nl + 1;
  }
  if (start < chunk.length) inbuf = chunk.slice(start);
});

function handleLine(line) {
  let m;
  try {
    m = parse(line);
  } catch (e) {
    agentLog('malformed message from daemon: ' + e.message);
    return;
  }
  if (m === null || typeof m !== 'object') {
    agentLog('malformed message from daemon');
    return;
  }
  if (m.op === 'invoke') {
    if (typeof m.id !== 'number' || m.id <= 0 || typeof m.cap !== 'string' || m.req === null || typeof m.req !== 'object') {
      agentLog('invalid invoke message');
      return;
    }
    onInvoke(m.id, m.cap, m.req);
    return;
  }
  if (m.op === 'storage_result' || m.op === 'token_result') {
    onStorageResult(m);
    return;
  }
  if (m.op === 'credit' || m.op === 'abort' || m.op === 'req_chunk' || m.op === 'req_end') {
    const inv = running.get(m.id);
    if (inv === undefined) return; // already ended
    if (m.op === 'credit') onCredit(inv, m.n);
    else if (m.op === 'abort') onAbort(inv);
    else if (m.op === 'req_chunk') onReqChunk(inv, m.body);
    else onReqEnd(inv);
    return;
  }
  agentLog('unknown op from daemon: ' + String(m.op));
}

// ---------------------------------------------------------------------------
// Invocations and results

const als = new AsyncLocalStorage();

// running maps the id of every invocation that can still be aborted (or
// get credit) to its Invocation: from invoke to its result, or to the end
// of its streamed response.
const running = new Map();

// Invocation is the per-call state, also the AsyncLocalStorage store.
// ref is the invocation's part of its storage and token calls: its id and
// its capability (the daemon's secret for this invocation alone).
function Invocation(id, cap, req) {
  this.id = id;
  this.ref = '"id":' + id + ',"cap":' + stringify(cap);
  this.req = req;
  this.done = false; // the result or the head was sent (or aborted)
  // Streamed response state (see "Streaming" below).
  this.credit = STREAM_WINDOW_BYTES;
  this.queue = []; // {buf, off, cb} waiting for credit
  this.queuedBytes = 0;
  this.endPending = false; // end() was called, "end" goes once the queue is sent
  this.finished = false; // "end" was sent
  this.aborted = false;
  this.onDrain = undefined; // called when the queue empties
  this.onAbort = undefined; // called when the daemon aborts
  this.onFinish = undefined; // called once "end" was sent
  // Streamed request body (req.body_more): see "Request bodies" below.
  this.bodyMore = req.body_more === true;
  this.bodyCollect = false; // gather it whole before running (parsed bodies)
  this.bodyParts = undefined;
  this.reqStream = undefined; // the 3-arity req the chunks are pushed into
  this.reqOwed = 0; // credit held back while req is above its high water mark
  this.resume = undefined; // runs the webtask once a collected body is whole

  this.logBytes = 0;
  this.logLimit = typeof req.log_limit === 'number' ? req.log_limit : 0;
  this.truncated = false;
  this.wt = undefined; // lazily built module.webtask view
  this.storage = undefined; // lazily built ctx.storage
  this.reqIDJSON = undefined; // JSON of req_id, built by the first log line
}

// Header values travel as base64 of their bytes (Node's latin1 strings).
const JSON_HEADERS = '{"content-type":["' + btoa('application/json') + '"]}';

// sendResult answers inv with a complete response; a body larger than one
// chunk goes as a streamed response instead (bounded lines, flow control).
function sendResult(inv, status, headersJSON, body) {
  if (inv.done) return false;
  if (body !== undefined && typeof body === 'string') body = BufferFrom(body);
  if (body !== undefined && body.length > CHUNK_BYTES) {
    // The whole body is known: its length goes with the head (the daemon
    // refuses a body over its budget before answering anything).
    if (headersJSON.indexOf('"content-length":') === -1) {
      headersJSON =
        headersJSON.slice(0, -1) +
        (headersJSON.length > 2 ? ',' : '') +
        '"content-length":["' +
        btoa(String(body.length)) +
        '"]}';
    }
    sendHead(inv, status, headersJSON);
    streamWrite(inv, body, undefined);
    streamEnd(inv);
    return true;
  }
  inv.done = true;
  running.delete(inv.id);
  const b64 = body === undefined || body.length === 0 ? '' : body.toString('base64');
  sendRaw(
    '{"op":"result","id":' + inv.id + ',"status":' + status + ',"headers":' + headersJSON + ',"body":"' + b64 + '"}\n'
  );
  return true;
}

// ---------------------------------------------------------------------------
// Streaming: "head", then "chunk"s within the credit the daemon grants
// (STREAM_WINDOW_BYTES at first, more with each "credit"), then "end".
// Writes beyond the credit wait in inv.queue: the write callbacks and
// 'drain' of a slow caller's response are late, nothing grows elsewhere.

const STREAM_WINDOW_BYTES = 256 * 1024; // sandbox/agent.StreamWindowBytes
const CHUNK_BYTES = 32 * 1024; // largest body piece of one message

function sendHead(inv, status, headersJSON) {
  inv.done = true;
  sendRaw('{"op":"head","id":' + inv.id + ',"status":' + status + ',"headers":' + headersJSON + '}\n');
}

// streamWrite queues buf (a Buffer) and sends what the credit allows; cb
// runs once all of buf left for the daemon.
function streamWrite(inv, buf, cb) {
  if (buf.length === 0) {
    if (cb !== undefined) inv.queue.push({ buf: buf, off: 0, cb: cb });
  } else {
    inv.queue.push({ buf: buf, off: 0, cb: cb });
    inv.queuedBytes += buf.length;
  }
  pump(inv);
}

function streamEnd(inv) {
  inv.endPending = true;
  pump(inv);
}

function pump(inv) {
  if (inv.aborted || inv.finished) return;
  const q = inv.queue;
  while (q.length !== 0) {
    const e = q[0];
    const left = e.buf.length - e.off;
    if (left !== 0) {
      if (inv.credit <= 0) break;
      const n = Math.min(left, inv.credit, CHUNK_BYTES);
      sendRaw('{"op":"chunk","id":' + inv.id + ',"body":"' + e.buf.toString('base64', e.off, e.off + n) + '"}\n');
      e.off += n;
      inv.credit -= n;
      inv.queuedBytes -= n;
      if (e.off !== e.buf.length) continue;
    }
    q.shift();
    if (e.cb !== undefined) nextTick(e.cb);
  }
  if (q.length !== 0) return;
  if (inv.endPending) {
    inv.finished = true;
    running.delete(inv.id);
    sendRaw('{"op":"end","id":' + inv.id + '}\n');
    if (inv.onFinish !== undefined) inv.onFinish();
    return;
  }
  if (inv.onDrain !== undefined) inv.onDrain();
}

function onCredit(inv, n) {
  if (typeof n === 'number' && n > 0) {
    inv.credit += n;
    pump(inv);
  }
}

// onAbort: the caller went away (or a limit ended the response). Pending
// writes fail, the webtask's req/res emit 'close' (in its context, so its
// handlers can still use storage), then "end" acknowledges the abort.
function onAbort(inv) {
  if (inv.aborted || inv.finished) return;
  inv.aborted = true;
  inv.done = true;
  const q = inv.queue;
  inv.queue = [];
  inv.queuedBytes = 0;
  for (const e of q) {
    if (e.cb !== undefined) nextTick(e.cb, destroyedError());
  }
  if (inv.onAbort !== undefined) {
    try {
      als.run(inv, inv.onAbort);
    } catch (e) {
      agentLog('abort handler: ' + safeToString(e));
    }
  }
  running.delete(inv.id);
  sendRaw('{"op":"end","id":' + inv.id + '}\n');
}

// ---------------------------------------------------------------------------
// Request bodies larger than the invoke carries ("body_more"): the daemon
// sends "req_chunk"s within the credit this agent grants ("req_credit":
// REQ_WINDOW_BYTES once the invocation is accepted, then what the webtask
// consumed), then "req_end". A parsed body (1/2-arity, pb=1, webtask_pb=1)
// is gathered whole first, bounded by the daemon's --max-body-bytes; a
// 3-arity webtask reads the stream from req, at its own pace.

const REQ_WINDOW_BYTES = 256 * 1024;

function grantBody(inv, n) {
  if (n > 0 && !inv.aborted) sendRaw('{"op":"req_credit","id":' + inv.id + ',"n":' + n + '}\n');
}

// startBody decides how the rest of the body arrives; true: the webtask
// runs once it is whole (inv.resume).
function startBody(inv, r, entry) {
  const url = typeof r.url === 'string' ? r.url : '';
  inv.bodyCollect = entry.arity < 3 || (r.pb | 0) === 1 || /[?&]webtask_pb=1(&|$)/.test(url);
  grantBody(inv, REQ_WINDOW_BYTES);
  if (!inv.bodyCollect) return false;
  inv.bodyParts = r.body ? [BufferFrom(r.body, 'base64')] : [];
  inv.resume = () => {
    r.body = Buffer.concat(inv.bodyParts);
    inv.bodyParts = undefined;
    runEntry(inv, r, entry);
  };
  return true;
}

function streamInto(inv, req) {
  inv.reqStream = req;
  req._read = function read() {
    this._consuming = true;
    const owed = inv.reqOwed;
    inv.reqOwed = 0;
    grantBody(inv, owed);
  };
}

function onReqChunk(inv, b64) {
  if (typeof b64 !== 'string' || inv.aborted) return;
  const buf = BufferFrom(b64, 'base64');
  if (inv.bodyCollect) {
    if (inv.bodyParts !== undefined) inv.bodyParts.push(buf);
    grantBody(inv, buf.length);
    return;
  }
  const req = inv.reqStream;
  if (req === undefined || req.destroyed) return;
  if (req.push(buf)) grantBody(inv, buf.length);
  else inv.reqOwed += buf.length;
}

function onReqEnd(inv) {
  if (inv.aborted) return;
  if (inv.bodyCollect) {
    const resume = inv.resume;
    inv.resume = undefined;
    if (resume !== undefined) als.run(inv, resume);
    return;
  }
  const req = inv.reqStream;
  if (req !== undefined && !req.destroyed) {
    req.push(null);
    req.complete = true;
  }
}

function destroyedError() {
  const e = new Error('Cannot call write after a stream was destroyed');
  e.code = 'ERR_STREAM_DESTROYED';
  return e;
}

function sendJSON(inv, status, value) {
  return sendResult(inv, status, JSON_HEADERS, stringify(value));
}

// errorBody renders an error as the Webtask JSON error shape (the
// reference runtime's Errors.create): details is an Error's string form or
// the raw value, then its name and message when it has them.
function errorBody(code, error, err) {
  const b = { code: code, error: error };
  if (err instanceof Error) {
    b.details = safeToString(err);
    b.name = err.name;
    b.message = err.message;
    for (const k of Object.keys(err)) {
      if (k !== 'stack' && !(k in b)) b[k] = err[k];
    }
  } else if (err !== undefined) {
    b.details = err;
    if (err !== null && typeof err === 'object') {
      if (err.name !== undefined) b.name = err.name;
      if (err.message !== undefined) b.message = err.message;
    }
  }
  return b;
}

function safeToString(v) {
  try {
    return String(v);
  } catch (_) {
    return Object.prototype.toString.call(v);
  }
}

function sendError(inv, code, error, err) {
  if (inv.done) return false;
  let json;
  try {
    json = stringify(errorBody(code, error, err));
  } catch (_) {
    // err carried something unserializable: fall back to its string form.
    json = stringify({ code: code, error: error, details: safeToString(err) });
  }
  return sendResult(inv, code, JSON_HEADERS, json);
}

// sendServerError renders a failure of the runtime itself, as the
// reference runtime does: {code: 500, error: "Server error", details}.
function sendServerError(inv, err) {
  return sendJSON(inv, 500, { code: 500, error: 'Server error', details: safeToString(err) });
}

// sendValue renders cb(null, v).
function sendValue(inv, v) {
  if (inv.done) return;
  let json;
  if (!v) {
    json = '{}';
  } else {
    let failure;
    try {
      json = stringify(v);
    } catch (e) {
      failure = e;
    }
    if (typeof json !== 'string') {
      sendError(inv, 400, 'Error when JSON serializing the result of the JavaScript code.', failure);
      return;
    }
  }
  sendResult(inv, 200, JSON_HEADERS, json);
}

// ---------------------------------------------------------------------------
// Compilation

// cache maps code_hash -> {fn, arity} or {error: errorBody, log: text for
// the webtask's stderr or undefined}; Map iteration order is insertion
// order, so re-inserting on use makes it an LRU.
const cache = new Map();

const userRequire = Module.createRequire(path.join(MODULES_DIR, '/'));

// storeRequires maps a module store key to a require resolving from its
// tree (/modules/<key>/node_modules): made once per key, shared by every
// webtask declaring that name@version.
const storeRequires = new Map();

function storeRequire(key) {
  let req = storeRequires.get(key);
  if (req === undefined) {
    req = Module.createRequire(path.join(MODULE_STORE, key, '/'));
    storeRequires.set(key, req);
  }
  return req;
}

// packageName is the package a require id names ('lodash/fp' -> 'lodash',
// '@s/p/x' -> '@s/p'); undefined for relative and absolute paths.
function packageName(id) {
  if (typeof id !== 'string' || id === '' || id[0] === '.' || id[0] === '/') return undefined;
  const parts = id.split('/');
  return id[0] === '@' ? parts.slice(0, 2).join('/') : parts[0];
}

// builtinRequire loads the runtime's own userspace modules
// (builtinExtensions: the middleware compiler and its auth middleware).
function builtinRequire(id) {
  return builtinExtensions[id];
}
builtinRequire.resolve = (id) => id;

// requireFor is the require of a webtask declaring mods (meta
// wt-node-dependencies, resolved by the daemon: name -> store key, or
// "!why" when that version is not available on this host). Declared
// packages load from their own version's tree; everything else (Node
// built-ins, the global --modules-dir set) as before.
function requireFor(mods) {
  if (!mods) return userRequire;
  const own = Object.prototype.hasOwnProperty;
  const pick = function (id) {
    const name = packageName(id);
    if (name !== undefined && id === name && own.call(builtinExtensions, name)) return builtinRequire;
    if (name === undefined || !own.call(mods, name)) return userRequire;
    const key = mods[name];
    if (typeof key !== 'string' || key.charCodeAt(0) === 33 /* ! */) {
      const err = new Error("Cannot find module '" + id + "'");
      err.code = 'MODULE_NOT_FOUND';
      err.wtReason = typeof key === 'string' ? key.slice(1) : name + ' is not available';
      throw err;
    }
    return storeRequire(key);
  };
  const req = function require(id) {
    return pick(id)(id);
  };
  req.resolve = function resolve(id, options) {
    return pick(id).resolve(id, options);
  };
  req.cache = userRequire.cache;
  return req;
}

// compileError is the cache entry of code that failed to load: the
// reference runtime's shape ("Unable to compile submitted JavaScript: " and
// the error's string form, details, name, message), except for a missing
// module, which gets the hosted service's message. A SyntaxError's location
// goes to the webtask's stderr (the runtime logs it too), not the answer.
function compileError(err) {
  if (err && err.code === 'MODULE_NOT_FOUND') {
    const mm = /Cannot find module '([^']*)'/.exec(String(err.message));
    const msg = mm ? 'Error: Cannot find module "' + mm[1] + '"' : safeToString(err).split('\n')[0];
    const details = typeof err.wtReason === 'string' ? msg + ' (' + err.wtReason + ')' : msg;
    return { error: { code: 400, error: 'Unable to compile submitted JavaScript. ' + msg, details: details } };
  }
  let body;
  try {
    body = stringify(errorBody(400, 'Unable to compile submitted JavaScript: ' + safeToString(err), err));
  } catch (_) {
    // err carried something unserializable: fall back to its string form.
    const s = safeToString(err);
    body = stringify({ code: 400, error: 'Unable to compile submitted JavaScript: ' + s, details: s });
  }
  const log = err instanceof Error && err.name === 'SyntaxError' ? syntaxLocation(err) : undefined;
  return { error: parse(body), log: log };
}

// syntaxLocation keeps the user-code part of a SyntaxError's stack (the
// "file:line / source / caret" preamble and the message), not agent frames.
function syntaxLocation(err) {
  const stack = typeof err.stack === 'string' ? err.stack : safeToString(err);
  const i = stack.indexOf('\n    at ');
  return i === -1 ? stack : stack.slice(0, i);
}

function moduleWebtask(mod, loadView) {
  Object.defineProperty(mod, 'webtask', {
    configurable: true,
    enumerable: true,
    get() {
      const inv = als.getStore();
      return inv ? webtaskView(inv) : loadView;
    },
  });
}

function webtaskView(inv) {
  if (inv.wt === undefined) {
    const r = inv.req;
    inv.wt = { meta: r.meta || {}, params: r.params || {}, secrets: r.secrets || {}, storage: storageOf(inv) };
  }
  return inv.wt;
}

// compile turns code into a cache entry. Runs inside the invocation's
// AsyncLocalStorage context so load-time output is attributed to it.
function compile(inv, code, mods) {
  let fn;
  try {
    fn = loadModuleCode(inv, code, requireFor(mods));
  } catch (e) {
    return compileError(e);
  }
  return functionEntry(fn);
}

// functionEntry is the cache entry of what code exported: the function
// and its arity, or the runtime's error when it is not a webtask function.
function functionEntry(fn) {
  if (typeof fn !== 'function') {
    return { error: { code: 400, error: ERR_NO_FUNCTION, details: ERR_NO_FUNCTION } };
  }
  const arity = fn.length;
  if (arity < 1 || arity > 3) {
    return { error: { code: 400, error: ERR_ARITY, details: ERR_ARITY } };
  }
  return { fn: fn, arity: arity };
}

// ---------------------------------------------------------------------------
// Compilers and middleware (meta wt-compiler, wt-middleware; reference §3.5)

const META_COMPILER = 'wt-compiler';
const META_MIDDLEWARE = 'wt-middleware';
const MIDDLEWARE_COMPILER = '@webtask/middleware-compiler';
// EXTENSION_SPEC is `module` or `module/export` (scoped modules included).
const EXTENSION_SPEC = /^(@[^/(]+\/[^/(]+|[^@/(]+)(?:\/([^/(]+))?$/;
const URL_SPEC = /^https?:\/\//;
const BODYLESS_METHODS = ['GET', 'HEAD', 'OPTIONS'];

// loadModuleCode runs code as a CommonJS module whose require is req and
// returns what it exports (or returns): a compiler's nodejsCompiler, and
// the code of URL compilers and middleware the daemon fetched.
function loadModuleCode(inv, code, req) {
  if (code.charCodeAt(0) === 0xfeff) code = code.slice(1);
  const wrapperFn = new vm.Script(Module.wrap(code), { filename: WEBTASK_FILENAME }).runInThisContext();
  const mod = { exports: {}, id: WEBTASK_FILENAME, filename: WEBTASK_FILENAME, loaded: false };
  moduleWebtask(mod, webtaskView(inv));
  const ret = wrapperFn.call(mod.exports, mod.exports, req, mod, WEBTASK_FILENAME, '/');
  mod.loaded = true;
  return typeof ret === 'function' ? ret : mod.exports;
}

// builtinExtensions are the userspace modules webtaskd provides without
// provisioning (they win over a provisioned module of the same name).
const builtinExtensions = {
  '@webtask/middleware-compiler': middlewareCompiler,
  '@webtask/cron-auth-middleware': function createCronAuthenticationMiddleware() {
    return function cronAuthenticationMiddleware(req, res, next) {
      const ctx = req.webtaskContext;
      const m = String(req.headers.authorization || '').trim().match(/^bearer (.+)$/i);
      if (!m || !ctx.token || ctx.token !== m[1]) return next(unauthenticated());
      return next();
    };
  },
  '@webtask/bearer-auth-middleware': function createAuthenticationMiddleware() {
    return function authMiddleware(req, res, next) {
      const ctx = req.webtaskContext;
      const secret = ctx.secrets && ctx.secrets['wt-auth-secret'];
      if (!secret) return next();
      const m = String(ctx.headers.authorization || '').trim().match(/^bearer\s+(.+[^\s-])\s*$/i);
      return next(m && m[1] === secret ? undefined : unauthenticated());
    };
  },
};

function unauthenticated() {
  const err = new Error('Unauthenticated extensibility point');
  err.statusCode = 401;
  return err;
}

// resolveExtension returns what spec (a module, module/export, or a URL
// whose code the daemon sent in r.extensions) names.
function resolveExtension(inv, spec, r, req) {
  if (URL_SPEC.test(spec)) {
    const code = r.extensions && r.extensions[spec];
    if (typeof code !== 'string') throw new Error('the code at ' + spec + ' is not available');
    return loadModuleCode(inv, code, req);
  }
  const m = EXTENSION_SPEC.exec(spec);
  if (!m) throw new Error('Failed to parse the extension spec: ' + spec);
  const mod = Object.prototype.hasOwnProperty.call(builtinExtensions, m[1]) ? builtinExtensions[m[1]] : req(m[1]);
  return m[2] ? mod[m[2]] : mod;
}

// nodejsCompilerFor is options.nodejsCompiler: code -> what it exports.
function nodejsCompilerFor(inv, r) {
  const req = requireFor(r.modules);
  return function nodejsCompiler(script, cb) {
    let fn;
    try {
      fn = loadModuleCode(inv, String(script), req);
    } catch (e) {
      return cb(e);
    }
    if (typeof fn !== 'function') return cb(new Error('Supplied code must return or export a function.'));
    return cb(null, fn);
  };
}

// compileWithCompiler runs meta wt-compiler over code and calls done with
// the cache entry; the compiler may call back at once or later.
function compileWithCompiler(inv, r, code, done) {
  const meta = r.meta || {};
  let called = false;
  const cb = function (err, fn) {
    if (called) return;
    called = true;
    return done(err ? compileError(err) : functionEntry(fn));
  };
  try {
    const compiler = resolveExtension(inv, meta[META_COMPILER], r, requireFor(r.modules));
    if (typeof compiler !== 'function') throw new Error('the compiler ' + meta[META_COMPILER] + ' is not a function');
    compiler(
      { script: code, nodejsCompiler: nodejsCompilerFor(inv, r), secrets: r.secrets || {}, meta: meta },
      cb
    );
  } catch (e) {
    cb(e);
  }
}

// middlewareSpecs parses meta wt-middleware: a JSON array, else CSV.
function middlewareSpecs(text) {
  if (!text) return [];
  let json;
  try {
    json = parse(text);
  } catch (_) {
    return text.split(',').map((s) => s.trim()).filter(Boolean);
  }
  if (!Array.isArray(json)) throw new Error('Unexpected JSON wt-middleware metadata that does not represent an array');
  return json;
}

// middlewareCompiler is the built-in @webtask/middleware-compiler (1.5.2's
// behaviour): the middleware of meta wt-middleware (factories called once,
// here at compile time, each returning a connect-style (req, res, next)),
// then the webtask; next(err) answers err.statusCode (500 masked as
// "Server error").
function middlewareCompiler(options, cb) {
  const inv = als.getStore();
  const r = inv.req;
  const req = requireFor(r.modules);
  let chain;
  try {
    chain = middlewareSpecs((options.meta || {})[META_MIDDLEWARE]).map(function (spec) {
      if (typeof spec !== 'string') throw new Error('Unexpected spec type');
      const factory = resolveExtension(inv, spec, r, req);
      if (typeof factory !== 'function') throw new Error('the middleware ' + spec + ' exports no factory function');
      const mw = factory();
      if (typeof mw !== 'function' || mw.length !== 3) {
        throw new Error('A Webtask middleware must export a function that returns a function with the signature `function(req, res, next)`');
      }
      return mw;
    });
  } catch (e) {
    return cb(e);
  }
  options.nodejsCompiler(options.script, function (err, webtaskFn) {
    if (err) return cb(err);
    if (webtaskFn.length < 1 || webtaskFn.length > 3) return cb(new Error(ERR_ARITY));
    cb(null, function middlewarePipeline(ctx, hreq, res) {
      ctx.compiler = { nodejsCompiler: options.nodejsCompiler, script: options.script };
      hreq.webtaskContext = ctx;
      let i = 0;
      const next = function (error) {
        if (error) return respondWithError(error, res);
        const mw = chain[i++];
        if (mw === undefined) return runWebtask(webtaskFn, ctx, hreq, res);
        try {
          return mw(hreq, res, next);
        } catch (e) {
          return respondWithError(e, res);
        }
      };
      next();
    });
  });
}

// runWebtask is the middleware compiler's last step: the webtask itself.
function runWebtask(fn, ctx, req, res) {
  delete ctx.compiler;
  if (fn.length === 3) return fn(ctx, req, res);
  delete req.webtaskContext;
  const respond = function (error, data) {
    if (error) return respondWithError(error, res);
    let json;
    try {
      json = stringify(data);
    } catch (_) {
      return respondWithError(new Error("Error when JSON serializing the webtask's response data"), res);
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(json);
  };
  const call = function () {
    return fn.length === 2 ? fn(ctx, respond) : fn(respond);
  };
  if (ctx.body || BODYLESS_METHODS.indexOf(req.method) !== -1) return call();
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('error', (e) => respondWithError(e, res));
  req.on('end', () => {
    const raw = Buffer.concat(chunks).toString('utf8');
    if (raw.length > 0) {
      if (/json/i.test(String(req.headers['content-type'] || ''))) {
        try {
          ctx.body = parse(raw);
        } catch (_) {
          const err = new Error('Invalid request payload JSON format');
          err.statusCode = 400;
          return respondWithError(err, res);
        }
      } else {
        ctx.body = raw;
      }
    }
    call();
  });
}

// respondWithError is the middleware compiler's error answer.
function respondWithError(error, res) {
  if (!(error instanceof Error)) error = new Error((error && error.message) || String(error) || 'Unknown error');
  let status = error.statusCode | 0 || 500;
  if (status < 100 || status > 599) status = 500;
  const payload = { message: error.message, statusCode: status };
  if (status === 500) {
    payload.message = 'Server error';
  } else {
    for (const k of ['code', 'errno', 'error', 'error_description', 'data']) if (error[k]) payload[k] = error[k];
  }
  let json;
  try {
    json = stringify(payload);
  } catch (_) {
    json = stringify({ message: 'Server error', statusCode: 500 });
  }
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(json);
}

// lastHash is the most recently used cache key (already last in the LRU
// order: a repeated hit need not move it).
let lastHash;

function lookup(inv, r) {
  const hash = r.code_hash;
  if (hash) {
    const hit = cache.get(hash);
    if (hit !== undefined) {
      if (hash !== lastHash) {
        cache.delete(hash);
        cache.set(hash, hit);
        lastHash = hash;
      }
      return hit;
    }
  }
  let code = r.code;
  if (typeof code !== 'string' || code.length === 0) {
    if (hash !== EMPTY_CODE_HASH) return undefined;
    code = '';
  }
  if (r.meta && r.meta[META_COMPILER]) return compileAsync(inv, r, code, hash);
  const entry = compile(inv, code, r.modules);
  remember(hash, entry);
  return entry;
}

function remember(hash, entry) {
  if (hash) {
    cache.set(hash, entry);
    lastHash = hash;
    if (cache.size > MAX_CACHED_FUNCTIONS) cache.delete(cache.keys().next().value);
  }
}

// compileAsync compiles with the webtask's compiler. Until its callback,
// the cache holds a pending entry: invocations arriving meanwhile wait in
// it and run when it resolves.
function compileAsync(inv, r, code, hash) {
  const pending = { waiting: [] };
  remember(hash, pending);
  let done;
  compileWithCompiler(inv, r, code, function (entry) {
    done = entry;
    if (hash && cache.get(hash) === pending) cache.set(hash, entry);
    const waiting = pending.waiting;
    pending.waiting = undefined;
    pending.entry = entry;
    for (const w of waiting) als.run(w.inv, runInvocation, w.inv, w.r);
  });
  return done === undefined ? pending : done;
}

// ---------------------------------------------------------------------------
// Invocation

function onInvoke(id, cap, r) {
  r.headers = latin1Headers(r.headers);
  const inv = new Invocation(id, cap, r);
  running.set(id, inv);
  als.run(inv, runInvocation, inv, r);
}

// latin1Headers turns the request header values into the latin1 strings
// Node's HTTP parser presents: ASCII values arrive as they are, the values
// of a header with other bytes as {"b64": [base64 of their bytes]}.
function latin1Headers(h) {
  if (h === null || typeof h !== 'object') return h;
  for (const k in h) {
    const v = h[k];
    if (v === null || typeof v !== 'object' || Array.isArray(v) || !Array.isArray(v.b64)) continue;
    const out = [];
    for (const x of v.b64) out.push(typeof x === 'string' ? base64Latin1(x) : '');
    h[k] = out;
  }
  return h;
}

function runInvocation(inv, r) {
  let entry;
  try {
    entry = lookup(inv, r);
  } catch (e) {
    sendServerError(inv, e);
    return;
  }
  if (entry === undefined) {
    inv.done = true;
    running.delete(inv.id);
    sendRaw('{"op":"need_code","id":' + inv.id + '}\n');
    return;
  }
  if (entry.waiting !== undefined) {
    entry.waiting.push({ inv: inv, r: r }); // its compiler has not called back yet
    return;
  }
  if (entry.entry !== undefined) entry = entry.entry;
  if (entry.error !== undefined) {
    if (entry.log !== undefined) userOutput(inv, 'stderr', entry.log);
    sendResult(inv, entry.error.code, JSON_HEADERS, stringify(entry.error));
    return;
  }
  if (inv.bodyMore && startBody(inv, r, entry)) return;
  runEntry(inv, r, entry);
}

function runEntry(inv, r, entry) {
  let ctx, req;
  try {
    const prepared = prepare(inv, r, entry.arity);
    ctx = prepared.ctx;
    req = prepared.req;
  } catch (e) {
    sendServerError(inv, e);
    return;
  }
  if (entry.arity === 3) {
    runHTTP(inv, entry.fn, ctx, req);
    return;
  }
  const cb = function webtaskCallback(err, value) {
    if (inv.done) return;
    if (err) sendError(inv, 400, 'Script returned an error.', err);
    else sendValue(inv, value);
  };
  let ret;
  try {
    ret = entry.arity === 1 ? entry.fn(cb) : entry.fn(ctx, cb);
  } catch (e) {
    sendError(inv, 500, 'Script generated an unhandled synchronous exception.', e);
    return;
  }
  if (ret !== null && typeof ret === 'object' && typeof ret.then === 'function') {
    ret.then(
      (v) => cb(null, v),
      (e) => cb(e || new Error('Promise rejected with ' + safeToString(e)))
    );
  }
}

// nodeHeaders turns {name: [values]} into Node's IncomingMessage shape.
function nodeHeaders(h) {
  const out = {};
  if (!h) return out;
  for (const k in h) {
    const v = h[k];
    const name = k.toLowerCase();
    if (!Array.isArray(v)) {
      out[name] = String(v);
    } else if (name === 'set-cookie') {
      out[name] = v.slice();
    } else {
      out[name] = v.length === 1 ? v[0] : v.join(', ');
    }
  }
  return out;
}

// prepare builds ctx (and for 3-arity the IncomingMessage) for one call.
function prepare(inv, r, arity) {
  const url = typeof r.url === 'string' ? r.url : '/';
  const qi = url.indexOf('?');
  const query = qi === -1 ? {} : querystring.parse(url.slice(qi + 1));
  let qpb, qmb;
  for (const k in query) {
    if (k.length > 8 && k.startsWith('webtask_')) {
      if (k === 'webtask_pb') qpb = query[k];
      else if (k === 'webtask_mb') qmb = query[k];
      delete query[k];
    }
  }
  const secrets = r.secrets || {};
  const params = r.params || {};
  const meta = r.meta || {};
  const headers = nodeHeaders(r.headers);
  const pb = r.pb | 0;
  const parseBody = pb === 1 || (pb === 2 && arity < 3) || qpb === '1';
  const mergeBody = (r.mb | 0) === 1 || qmb === '1';

  const data = Object.assign({}, query, params, secrets);
  const ctx = {
    data: data,
    query: query,
    secrets: secrets,
    params: params,
    meta: meta,
    headers: headers,
    id: r.req_id,
    token: r.token,
    storage: storageOf(inv),
    create_token: tokenCreator(inv, false),
    create_token_url: tokenCreator(inv, true),
  };
  const raw = r.body ? BufferFrom(r.body, 'base64') : undefined;
  if (parseBody) {
    ctx.body_raw = raw === undefined ? '' : raw.toString('utf8');
    const body = parseRequestBody(headers['content-type'], ctx.body_raw);
    if (body !== undefined) {
      ctx.body = body;
      if (mergeBody && body !== null && typeof body === 'object' && !Array.isArray(body)) {
        for (const k in body) {
          if (!(k in data)) data[k] = body[k];
        }
      }
    }
  }
  let req;
  if (arity === 3) {
    req = makeRequest(inv, r, headers, parseBody ? undefined : raw, pb, r.mb | 0);
  }
  return { ctx: ctx, req: req };
}

function parseRequestBody(contentType, raw) {
  if (!contentType || raw.length === 0) return undefined;
  const ct = contentType.split(';')[0].trim().toLowerCase();
  try {
    if (ct === 'application/json') return parse(raw);
    if (ct === 'application/x-www-form-urlencoded') return Object.assign({}, querystring.parse(raw));
  } catch (_) {
    // parse errors are ignored, as in the hosted runtime
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Storage (ctx.storage, module.webtask.storage): one JSON document per named
// webtask, kept by the daemon. Each invocation has its own storage object
// that remembers the etag of its last get (or set), for optimistic
// concurrency.

let nextSid = 0;
// storageCalls maps sid -> callback bound to the caller's async context.
const storageCalls = new Map();

function storageError(code, message) {
  const err = new Error(message);
  err.code = code;
  return err;
}

// storageCall sends one storage (or, with op 'token', token) call of inv;
// cb gets the answer with the same sid.
function storageCall(inv, fields, cb, op) {
  const sid = ++nextSid;
  storageCalls.set(sid, AsyncResource.bind(cb));
  sendRaw('{"op":"' + (op || 'storage') + '",' + inv.ref + ',"sid":' + sid + ',' + fields + '}\n');
}

function onStorageResult(m) {
  const cb = storageCalls.get(m.sid);
  if (cb === undefined) {
    agentLog('storage_result for unknown sid ' + String(m.sid));
    return;
  }
  storageCalls.delete(m.sid);
  cb(m);
}

// parseDoc turns the daemon's JSON text into the value (undefined: none).
function parseDoc(text) {
  return typeof text === 'string' ? parse(text) : undefined;
}

function storageOf(inv) {
  if (inv.storage === undefined) inv.storage = makeStorage(inv);
  return inv.storage;
}

function makeStorage(inv) {
  let etag; // undefined until the first get (or successful set)
  const named = typeof inv.req.jtn === 'string' && inv.req.jtn.length !== 0;
  return {
    get(options, cb) {
      if (typeof options === 'function') cb = options;
      if (typeof cb !== 'function') throw new TypeError('storage.get requires a callback');
      if (!named) {
        nextTick(cb, storageError(400, 'storage is only available to named webtasks'));
        return;
      }
      storageCall(inv, '"action":"get"', (r) => {
        if (r.code) {
          cb(storageError(r.code, r.message || 'storage error'));
          return;
        }
        let data;
        try {
          data = parseDoc(r.data);
        } catch (e) {
          cb(storageError(500, 'stored document is not valid JSON'));
          return;
        }
        etag = typeof r.etag === 'number' ? r.etag : 0;
        cb(null, data);
      });
    },
    set(data, options, cb) {
      if (typeof options === 'function') {
        cb = options;
        options = undefined;
      }
      if (typeof cb !== 'function') cb = function () {};
      const force = !!(options && options.force);
      if (!named) {
        nextTick(cb, storageError(400, 'storage is only available to named webtasks'));
        return;
      }
      if (!force && etag === undefined) {
        // As the local runtime does: a set must follow a get, or force.
        throw new Error('storage.set was called before storage.get; call storage.get first or pass { force: 1 }');
      }
      let text;
      try {
        text = data === undefined || data === null ? 'null' : stringify(data);
      } catch (e) {
        nextTick(cb, storageError(400, 'storage data is not JSON-serializable: ' + e.message));
        return;
      }
      if (typeof text !== 'string') {
        nextTick(cb, storageError(400, 'storage data is not JSON-serializable'));
        return;
      }
      if (Buffer.byteLength(text) > MAX_STORAGE_BYTES) {
        nextTick(cb, storageError(413, 'storage data exceeds ' + MAX_STORAGE_BYTES + ' bytes'));
        return;
      }
      const fields = '"action":"set","data":' + stringify(text) + (force ? ',"force":true' : ',"etag":' + etag);
      storageCall(inv, fields, (r) => {
        if (r.code) {
          const err = storageError(r.code, r.message || 'storage error');
          if (r.code === 409) {
            try {
              err.conflict = parseDoc(r.data);
            } catch (_) {
              err.conflict = undefined;
            }
            // The next set is checked against the document the conflict
            // carries: merge it into your data and set again.
            etag = typeof r.etag === 'number' ? r.etag : 0;
          }
          cb(err);
          return;
        }
        etag = typeof r.etag === 'number' ? r.etag : 0;
        cb(null);
      });
    },
  };
}

// ---------------------------------------------------------------------------
// ctx.create_token(options, cb) / ctx.create_token_url(options, cb): the
// daemon issues a child of the token this invocation runs under, narrowed
// as POST /api/tokens/issue narrows (options are its claims; a string is
// {url: string}). cb(err) carries err.code (the API's HTTP status); on
// success cb(null, token) or cb(null, url). Calls share the storage sids.

function tokenCreator(inv, asURL) {
  return function createToken(options, cb) {
    if (typeof options === 'function') {
      cb = options;
      options = undefined;
    }
    if (typeof cb !== 'function') throw new TypeError('create_token requires a callback');
    if (typeof options === 'string') options = { url: options };
    if (options === undefined || options === null) options = {};
    if (typeof options !== 'object' || Array.isArray(options)) {
      nextTick(cb, storageError(400, 'the token options must be an object'));
      return;
    }
    let claims;
    try {
      claims = stringify(options);
    } catch (e) {
      nextTick(cb, storageError(400, 'the token options are not JSON-serializable: ' + e.message));
      return;
    }
    storageCall(inv, '"claims":' + claims + (asURL ? ',"as_url":true' : ''), (r) => {
      if (r.code) {
        cb(storageError(r.code, r.message || 'token creation failed'));
        return;
      }
      cb(null, asURL ? r.url : r.token);
    }, 'token');
  };
}

// ---------------------------------------------------------------------------
// 3-arity: real http.IncomingMessage / http.ServerResponse

function makeRequest(inv, r, headers, body, pb, mb) {
  const xwt = {
    container: r.container,
    jtn: r.jtn,
    mb: mb,
    pb: pb,
    pctx: r.params || {},
    ectx: r.secrets || {},
    meta: r.meta || {},
    token: r.token,
    req_id: r.req_id,
    url_format: r.url_format,
  };
  // An unconnected socket stands in for the connection: it stays readable
  // and writable (so on-finished/body-parser see a live request), resuming
  // it is a no-op, and it never emits anything.
  const sock = new net.Socket();
  const xff = headers['x-forwarded-for'];
  if (typeof xff === 'string' && xff.length !== 0) {
    Object.defineProperty(sock, 'remoteAddress', { value: xff.split(',')[0].trim(), configurable: true });
  }
  const req = new http.IncomingMessage(sock);
  req.method = r.method || 'GET';
  req.url = typeof r.url === 'string' ? r.url : '/';
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  req.httpVersion = '1.1';
  headers = Object.assign({}, headers);
  headers['x-wt-params'] = BufferFrom(stringify(xwt)).toString('base64');
  req.headers = headers;
  const rawHeaders = [];
  for (const k in headers) {
    const v = headers[k];
    if (Array.isArray(v)) for (const x of v) rawHeaders.push(k, x);
    else rawHeaders.push(k, v);
  }
  req.rawHeaders = rawHeaders;
  req.x_wt = xwt;
  if (body !== undefined && body.length > 0) req.push(body);
  if (inv.bodyMore && !inv.bodyCollect) {
    streamInto(inv, req);
  } else {
    req.push(null);
    req.complete = true;
  }
  return req;
}

function runHTTP(inv, fn, ctx, req) {
  const res = new http.ServerResponse(req);
  captureResponse(inv, req, res);
  let ret;
  try {
    ret = fn(ctx, req, res);
  } catch (e) {
    sendError(inv, 500, 'Script generated an unhandled synchronous exception.', e);
    return;
  }
  if (ret !== null && typeof ret === 'object' && typeof ret.then === 'function') {
    ret.then(undefined, (e) => {
      if (!inv.done) sendError(inv, 500, 'Script generated an unhandled asynchronous exception.', e);
    });
  }
}

const protoWriteHead = http.ServerResponse.prototype.writeHead;
// HIGH_WATER_MARK_BYTES: res.write returns false (and 'drain' follows)
// once this much waits to be sent, as a Node socket's writable does.
const HIGH_WATER_MARK_BYTES = 16 * 1024;
const EMPTY = Buffer.alloc(0);

// captureResponse overrides the response's output methods on the instance:
// headers/status stay in Node's own bookkeeping (setHeader, getHeader,
// statusCode, headersSent work as usual). Status and headers leave at the
// tick of writeHead or the first write (flushHeaders: at once), chunks as
// the daemon's credit allows; a response ended in the tick it began (and
// small) leaves as one "result". end() completes the invocation.
function captureResponse(inv, req, res) {
  const pre = []; // {buf, cb} written before the head left
  let preBytes = 0;
  let ended = false;
  let flushScheduled = false;
  let needDrain = false;
  let closed = false;

  function emitClose() {
    if (closed) return;
    closed = true;
    res.emit('close');
  }

  function flush() {
    if (inv.done) return;
    sendHead(inv, res.statusCode, resultHeaders(res));
    const p = pre.splice(0);
    preBytes = 0;
    for (const e of p) streamWrite(inv, e.buf, e.cb);
  }

  function scheduleFlush() {
    if (flushScheduled || inv.done) return;
    flushScheduled = true;
    nextTick(flush);
  }

  inv.onDrain = function () {
    if (needDrain) {
      needDrain = false;
      nextTick(() => res.emit('drain'));
    }
  };

  inv.onAbort = function () {
    needDrain = false;
    res.destroyed = true;
    if (!req.destroyed) req.destroy();
    emitClose();
  };

  res.writeHead = function writeHead(statusCode, reason, obj) {
    if (typeof reason !== 'string') {
      obj = reason;
      reason = undefined;
    }
    if (this._header) return protoWriteHead.call(this, statusCode); // throws ERR_HTTP_HEADERS_SENT
    if (obj) {
      if (Array.isArray(obj)) {
        if (obj.length && Array.isArray(obj[0])) {
          for (const [k, v] of obj) this.setHeader(k, v);
        } else {
          for (let i = 0; i + 1 < obj.length; i += 2) this.setHeader(obj[i], obj[i + 1]);
        }
      } else {
        for (const k of Object.keys(obj)) if (obj[k] !== undefined) this.setHeader(k, obj[k]);
      }
    }
    const r =
      reason === undefined ? protoWriteHead.call(this, statusCode) : protoWriteHead.call(this, statusCode, reason);
    scheduleFlush();
    return r;
  };

  function toBuffer(chunk, encoding) {
    if (chunk === undefined || chunk === null) return EMPTY;
    if (typeof chunk === 'string') {
      return chunk.length ? BufferFrom(chunk, typeof encoding === 'string' ? encoding : 'utf8') : EMPTY;
    }
    if (chunk instanceof Uint8Array) return chunk.length ? BufferFrom(chunk) : EMPTY; // copy: callers may reuse buffers
    const e = new TypeError('The "chunk" argument must be of type string or an instance of Buffer or Uint8Array');
    e.code = 'ERR_INVALID_ARG_TYPE';
    throw e;
  }

  res.write = function write(chunk, encoding, cb) {
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (typeof cb !== 'function') cb = undefined;
    if (ended) {
      const e = new Error('write after end');
      e.code = 'ERR_STREAM_WRITE_AFTER_END';
      if (cb !== undefined) nextTick(cb, e);
      return false;
    }
    const buf = toBuffer(chunk, encoding);
    if (inv.aborted) {
      if (cb !== undefined) nextTick(cb, destroyedError());
      return false;
    }
    if (!this._header) this._implicitHeader();
    let waiting;
    if (inv.done) {
      streamWrite(inv, buf, cb);
      waiting = inv.queuedBytes;
    } else {
      pre.push({ buf: buf, cb: cb });
      preBytes += buf.length;
      waiting = preBytes;
      scheduleFlush();
    }
    if (waiting >= HIGH_WATER_MARK_BYTES) {
      needDrain = true;
      return false;
    }
    return true;
  };

  res.end = function end(chunk, encoding, cb) {
    if (typeof chunk === 'function') {
      cb = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (ended || inv.aborted) {
      if (typeof cb === 'function') nextTick(cb);
      return this;
    }
    const buf = toBuffer(chunk, encoding);
    if (!this._header) this._implicitHeader();
    ended = true;
    this.finished = true;
    if (typeof cb === 'function') this.once('finish', cb);
    const finish = () => {
      nextTick(() => {
        this.emit('prefinish');
        this.emit('finish');
        emitClose();
      });
    };
    if (!inv.done) {
      // Ended before anything left: the whole body is known, one result
      // (streamed with its length when large).
      const p = pre.splice(0);
      preBytes = 0;
      const bufs = [];
      for (const e of p) {
        if (e.buf.length) bufs.push(e.buf);
        if (e.cb !== undefined) nextTick(e.cb);
      }
      if (buf.length) bufs.push(buf);
      inv.onFinish = finish;
      sendResult(inv, this.statusCode, resultHeaders(this), bufs.length === 1 ? bufs[0] : Buffer.concat(bufs));
      if (!inv.endPending) finish(); // sent at once
      return this;
    }
    flush();
    inv.onFinish = finish;
    if (buf.length) streamWrite(inv, buf, undefined);
    streamEnd(inv);
    return this;
  };

  res.flushHeaders = function flushHeaders() {
    if (!this._header) this._implicitHeader();
    flush();
  };
}

// base64Latin1 decodes a header value (base64 of its bytes) into the
// latin1 string Node's HTTP parser presents; malformed base64 decodes
// leniently, as Buffer does.
function base64Latin1(v) {
  try {
    return atob(v);
  } catch (_) {
    return BufferFrom(v, 'base64').toString('latin1');
  }
}

// latin1Base64 is base64 of the bytes Node writes for header value s (its
// latin1 encoding; Node refuses characters past U+00FF in headers, a
// Buffer keeps the low byte of any that slip through, as Node's latin1).
function latin1Base64(s) {
  try {
    return btoa(s);
  } catch (_) {
    return BufferFrom(s, 'latin1').toString('base64');
  }
}

// resultHeaders renders the response headers: lower-case names, values as
// base64 of their latin1 bytes (what Node writes on a socket).
function resultHeaders(res) {
  const h = res.getHeaders();
  let out = '{';
  for (const k in h) {
    const v = h[k];
    if (v === undefined) continue;
    if (out.length > 1) out += ',';
    out += stringify(k.toLowerCase()) + ':[';
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        if (i > 0) out += ',';
        out += '"' + latin1Base64(String(v[i])) + '"';
      }
    } else {
      out += '"' + latin1Base64(String(v)) + '"';
    }
    out += ']';
  }
  return out + '}';
}

// ---------------------------------------------------------------------------
// User output capture

function sendLog(inv, stream, msg) {
  if (inv.reqIDJSON === undefined) {
    inv.reqIDJSON = stringify(typeof inv.req.req_id === 'string' ? inv.req.req_id : '');
  }
  sendRaw(
    '{"op":"log","id":' + inv.id + ',"req_id":' + inv.reqIDJSON + ',"stream":"' + stream + '","msg":' + stringify(msg) + '}\n'
  );
}

function userOutput(inv, stream, s) {
  if (s.length !== 0 && s.charCodeAt(s.length - 1) === 10) s = s.slice(0, -1);
  if (inv.truncated) return;
  if (inv.logLimit > 0) {
    const n = Buffer.byteLength(s) + 1;
    if (inv.logBytes + n > inv.logLimit) {
      inv.truncated = true;
      sendLog(inv, stream, TRUNCATION_MARKER);
      return;
    }
    inv.logBytes += n;
  }
  sendLog(inv, stream, s);
}

function patchStream(stream, name, orig) {
  stream.write = function write(chunk, encoding, cb) {
    const inv = als.getStore();
    if (inv === undefined) return orig.apply(this, arguments);
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    let s;
    if (typeof chunk === 'string') s = chunk;
    else if (chunk instanceof Uint8Array) s = BufferFrom(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
    else s = safeToString(chunk);
    userOutput(inv, name, s);
    if (typeof cb === 'function') nextTick(cb);
    return true;
  };
}

patchStream(process.stdout, 'stdout', origStdoutWrite);
patchStream(process.stderr, 'stderr', origStderrWrite);

// ---------------------------------------------------------------------------
// Asynchronous failures of user code

function describe(err) {
  if (err instanceof Error && typeof err.stack === 'string') return err.stack;
  return safeToString(err);
}

function onAsyncFailure(kind, err) {
  const inv = als.getStore();
  if (inv === undefined) {
    agentLog(kind + ' outside any invocation: ' + describe(err));
    return;
  }
  userOutput(inv, 'stderr', kind + ': ' + describe(err));
  if (!inv.done) sendError(inv, 500, 'Script generated an unhandled asynchronous exception.', err);
}

process.on('uncaughtException', (err) => onAsyncFailure('Uncaught exception', err));
process.on('unhandledRejection', (err) => onAsyncFailure('Unhandled rejection', err));

// ---------------------------------------------------------------------------

sendRaw(stringify({ op: 'ready', pid: process.pid, node: process.version }) + '\n');
