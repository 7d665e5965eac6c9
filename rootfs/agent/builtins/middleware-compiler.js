'use strict';
// @webtask/middleware-compiler, built in (1.5.2's behaviour): the
// middleware of meta wt-middleware, then the webtask.

const { stringify, parse } = require('../protocol');
const { als } = require('../invocation');
const { requireFor } = require('../resolve');
const { ERR_ARITY } = require('../compile');
const { resolveExtension } = require('../extensions');

const META_MIDDLEWARE = 'wt-middleware';
const BODYLESS_METHODS = ['GET', 'HEAD', 'OPTIONS'];

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

module.exports = middlewareCompiler;
