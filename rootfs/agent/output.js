'use strict';
// The webtask's output: process.stdout/stderr written inside an invocation
// become its "log" lines (bounded by its log limit), and its asynchronous
// failures its error answer.

const { stringify, BufferFrom, nextTick, agentLog, sendRaw, safeToString } = require('./protocol');
const { als } = require('./invocation');
const { sendError } = require('./result');

const TRUNCATION_MARKER = '[webtaskd: log output truncated]';

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

module.exports = { userOutput, patchStream, onAsyncFailure };
