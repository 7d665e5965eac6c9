'use strict';
// Complete answers: a result (streamed when its body is large), and the
// Webtask JSON shapes of values and errors.

const { stringify, BufferFrom, btoa, sendRaw, safeToString } = require('./protocol');
const { running } = require('./invocation');
const { CHUNK_BYTES, sendHead, streamWrite, streamEnd } = require('./stream');

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

module.exports = { JSON_HEADERS, sendResult, sendJSON, errorBody, sendError, sendServerError, sendValue };
