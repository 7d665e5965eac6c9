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

//
// Its parts, one concept a file: protocol.js (channel, framing), invocation.js
// (per-call state), invoke.js (cache, dispatch by arity), context.js (ctx,
// req), body.js (request bodies), result.js and stream.js (answers, streamed
// responses), response.js (3-arity res), callbacks.js (storage, tokens),
// compile.js, resolve.js, extensions.js and builtins/ (code, require,
// compilers, middleware), output.js (logs, async failures).

// V8 accepts the code cache that node ships for its built-in modules (http,
// net, vm...) only when the V8 flags that differ from their defaults hash
// as they did when it was made. --max-old-space-size is one of them: with it,
// every built-in the agent loads would be compiled from source, about 10 ms
// of CPU per boot (docs/PERFORMANCE.md). V8 sized this isolate's heap from
// the flag when it created it and keeps that limit, so the flag is at its
// default while the agent loads and set back before the first webtask runs
// (a Worker it starts is sized by the flag, as without this).
const v8 = v8Binding();
const heapFlag = process.execArgv.find((a) => a.startsWith('--max-old-space-size='));
if (heapFlag !== undefined) v8.setFlagsFromString('--max-old-space-size=0');

// A daemon sharing pages between sandboxes (--share-pages) starts every
// node with one V8 random seed, so that their heaps are laid out alike and
// the kernel can merge them; V8 would then seed Math.random alike in every
// sandbox too. A seed of this sandbox's own replaces it before any code
// draws a number. (Contexts a webtask creates with `vm` draw from it too:
// within one sandbox they start from the same sequence.)
if (process.execArgv.some((a) => a.startsWith('--random-seed='))) {
  v8.setFlagsFromString('--random-seed=' + ((require('crypto').randomBytes(4).readUInt32LE(0) >>> 1) | 1));
}

const { stringify, parse, origStdoutWrite, origStderrWrite, agentLog, sendRaw, listen } = require('./protocol');
const { running } = require('./invocation');
const { onCredit, onAbort } = require('./stream');
const { onReqChunk, onReqEnd } = require('./body');
const { onStorageResult } = require('./callbacks');
const { onInvoke } = require('./invoke');
const { patchStream, onAsyncFailure } = require('./output');
require('./builtins');

listen(handleLine);

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

patchStream(process.stdout, 'stdout', origStdoutWrite);
patchStream(process.stderr, 'stderr', origStderrWrite);

process.on('uncaughtException', (err) => onAsyncFailure('Uncaught exception', err));
process.on('unhandledRejection', (err) => onAsyncFailure('Unhandled rejection', err));

if (heapFlag !== undefined) v8.setFlagsFromString(heapFlag);
sendRaw(stringify({ op: 'ready', pid: process.pid, node: process.version }) + '\n');

// v8Binding is node's own binding behind require('v8'), whose
// setFlagsFromString it calls: require('v8') would first load a dozen
// internal modules (compiled from source while --max-old-space-size is
// set: 6-9 ms). process.binding is deprecated (DEP0111); its warning is
// silenced for this one call, and require('v8') stands in on a node that
// no longer has it.
function v8Binding() {
  const quiet = process.noDeprecation;
  process.noDeprecation = true;
  try {
    const b = process.binding('v8');
    if (typeof b.setFlagsFromString === 'function') return b;
  } catch (_) {
    // gone from this node
  } finally {
    process.noDeprecation = quiet;
  }
  return require('v8');
}
