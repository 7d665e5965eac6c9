'use strict';
// Streamed responses: "head", "chunk"s within the daemon's credit, "end",
// and the daemon's "credit" and "abort" for them.

const { nextTick, agentLog, sendRaw, safeToString } = require('./protocol');
const { als, running } = require('./invocation');

// Streaming: "head", then "chunk"s within the credit the daemon grants
// (STREAM_WINDOW_BYTES of invocation.js at first, more with each
// "credit"), then "end".
// Writes beyond the credit wait in inv.queue: the write callbacks and
// 'drain' of a slow caller's response are late, nothing grows elsewhere.

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

function destroyedError() {
  const e = new Error('Cannot call write after a stream was destroyed');
  e.code = 'ERR_STREAM_DESTROYED';
  return e;
}

module.exports = { CHUNK_BYTES, sendHead, streamWrite, streamEnd, onCredit, onAbort, destroyedError };
