'use strict';
// Compiling webtask code: the CommonJS wrapper run in this context (with
// module.webtask), the cache entry of a function (and its arity), and the
// reference runtime's compile error shapes.

const vm = require('vm');
const Module = require('module');
const { stringify, parse, safeToString } = require('./protocol');
const { als } = require('./invocation');
const { errorBody } = require('./result');
const { storageOf } = require('./callbacks');
const { requireFor } = require('./resolve');

const WEBTASK_FILENAME = '/webtask.js';
// The reference runtime's (webtask-runtime) compile errors, word for word:
// the §3.1 messages as Error strings after "Unable to compile submitted
// JavaScript. ", in error and details.
const ERR_ARITY =
  'Unable to compile submitted JavaScript. Error: The JavaScript function must have one of the following signatures: ([ctx], callback) or (ctx, req, res).';
const ERR_NO_FUNCTION =
  'Unable to compile submitted JavaScript. Error: Supplied code must return or export a function.';

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


module.exports = { ERR_ARITY, compile, compileError, functionEntry, loadModuleCode };
