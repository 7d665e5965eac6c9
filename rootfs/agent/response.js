'use strict';
// The 3-arity webtask's http.ServerResponse: its output captured into a
// result, or a streamed response within the daemon's credit.

const http = require('http');
const { stringify, BufferFrom, nextTick, btoa } = require('./protocol');
const { sendHead, streamWrite, streamEnd, destroyedError } = require('./stream');
const { sendResult, sendError } = require('./result');

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

module.exports = { runHTTP };
