'use strict';
// What a webtask is called with: ctx (query, params, secrets, parsed body,
// storage, create_token) and, for 3-arity, the http.IncomingMessage.

const net = require('net');
const http = require('http');
const querystring = require('querystring');
const { stringify, BufferFrom, atob } = require('./protocol');
const { streamInto, parseRequestBody } = require('./body');
const { storageOf, tokenCreator } = require('./callbacks');

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

module.exports = { latin1Headers, prepare };
