'use strict';
// Compilers (meta wt-compiler; reference §3.5): resolving an extension spec
// (module, module/export or URL) and running a webtask's compiler. The
// built-in ones are in builtins/.

const { builtinExtensions, requireFor } = require('./resolve');
const { compileError, functionEntry, loadModuleCode } = require('./compile');

const META_COMPILER = 'wt-compiler';
// EXTENSION_SPEC is `module` or `module/export` (scoped modules included).
const EXTENSION_SPEC = /^(@[^/(]+\/[^/(]+|[^@/(]+)(?:\/([^/(]+))?$/;
const URL_SPEC = /^https?:\/\//;

// resolveExtension returns what spec (a module, module/export, or a URL
// whose code the daemon sent in r.extensions) names.
function resolveExtension(inv, spec, r, req) {
  if (URL_SPEC.test(spec)) {
    const code = r.extensions && r.extensions[spec];
    if (typeof code !== 'string') throw new Error('the code at ' + spec + ' is not available');
    return loadModuleCode(inv, code, req);
  }
  const m = EXTENSION_SPEC.exec(spec);
  if (!m) throw new Error('Failed to parse the extension spec: ' + spec);
  const mod = Object.prototype.hasOwnProperty.call(builtinExtensions, m[1]) ? builtinExtensions[m[1]] : req(m[1]);
  return m[2] ? mod[m[2]] : mod;
}

// nodejsCompilerFor is options.nodejsCompiler: code -> what it exports.
function nodejsCompilerFor(inv, r) {
  const req = requireFor(r.modules);
  return function nodejsCompiler(script, cb) {
    let fn;
    try {
      fn = loadModuleCode(inv, String(script), req);
    } catch (e) {
      return cb(e);
    }
    if (typeof fn !== 'function') return cb(new Error('Supplied code must return or export a function.'));
    return cb(null, fn);
  };
}

// compileWithCompiler runs meta wt-compiler over code and calls done with
// the cache entry; the compiler may call back at once or later.
function compileWithCompiler(inv, r, code, done) {
  const meta = r.meta || {};
  let called = false;
  const cb = function (err, fn) {
    if (called) return;
    called = true;
    return done(err ? compileError(err) : functionEntry(fn));
  };
  try {
    const compiler = resolveExtension(inv, meta[META_COMPILER], r, requireFor(r.modules));
    if (typeof compiler !== 'function') throw new Error('the compiler ' + meta[META_COMPILER] + ' is not a function');
    compiler(
      { script: code, nodejsCompiler: nodejsCompilerFor(inv, r), secrets: r.secrets || {}, meta: meta },
      cb
    );
  } catch (e) {
    cb(e);
  }
}

module.exports = { META_COMPILER, resolveExtension, compileWithCompiler };
