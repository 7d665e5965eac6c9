'use strict';
// Request bodies: the rest of a large body streamed in by the daemon
// ("req_chunk", "req_end", credit granted with "req_credit"), and the
// parsing of a body for ctx.body.

const querystring = require('querystring');
const { parse, BufferFrom, sendRaw } = require('./protocol');
const { als } = require('./invocation');

// Request bodies larger than the invoke carries ("body_more"): the daemon
// sends "req_chunk"s within the credit this agent grants ("req_credit":
// REQ_WINDOW_BYTES once the invocation is accepted, then what the webtask
// consumed), then "req_end". A parsed body (1/2-arity, pb=1, webtask_pb=1)
// is gathered whole first, bounded by the daemon's --max-body-bytes; a
// 3-arity webtask reads the stream from req, at its own pace. (startBody,
// which picks one or the other, is in invoke.js.)

const REQ_WINDOW_BYTES = 256 * 1024;

function grantBody(inv, n) {
  if (n > 0 && !inv.aborted) sendRaw('{"op":"req_credit","id":' + inv.id + ',"n":' + n + '}\n');
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

module.exports = { REQ_WINDOW_BYTES, grantBody, streamInto, onReqChunk, onReqEnd, parseRequestBody };
