'use strict';
// Running an invocation: the compiled-function cache (an LRU by
// code_hash, compilers' pending entries included), then the call by arity.

const { stringify, BufferFrom, sendRaw, safeToString } = require('./protocol');
const { als, running, Invocation } = require('./invocation');
const { JSON_HEADERS, sendResult, sendError, sendServerError, sendValue } = require('./result');
const { REQ_WINDOW_BYTES, grantBody } = require('./body');
const { compile } = require('./compile');
const { META_COMPILER, compileWithCompiler } = require('./extensions');
const { latin1Headers, prepare } = require('./context');
const { runHTTP } = require('./response');
const { userOutput } = require('./output');

const MAX_CACHED_FUNCTIONS = 256;
// EMPTY_CODE_HASH is the code_hash (hex sha256) of empty code. Empty code
// is valid code (it exports no function), but an empty code field is
// omitted on the wire like code the agent already has, so its hash alone
// stands for it.
const EMPTY_CODE_HASH = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

// cache maps code_hash -> {fn, arity} or {error: errorBody, log: text for
// the webtask's stderr or undefined}; Map iteration order is insertion
// order, so re-inserting on use makes it an LRU.
const cache = new Map();

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

function onInvoke(id, cap, r) {
  r.headers = latin1Headers(r.headers);
  const inv = new Invocation(id, cap, r);
  running.set(id, inv);
  als.run(inv, runInvocation, inv, r);
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

module.exports = { onInvoke };
