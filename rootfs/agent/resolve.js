'use strict';
// Per-webtask require: Node built-ins, the declared packages from their own
// version's tree in the module store, the global modules dir, and the
// built-in @webtask/* modules (registered by builtins/index.js).

const path = require('path');
const Module = require('module');

const MODULES_DIR = process.env.WEBTASKD_MODULES_DIR || '/node_modules';
// MODULE_STORE is the provisioned module store, bound read-only:
// <store>/<sha256(name@version)>/node_modules/<name>, each with its own
// dependency tree.
const MODULE_STORE = process.env.WEBTASKD_MODULE_STORE || '/modules';

const userRequire = Module.createRequire(path.join(MODULES_DIR, '/'));

// storeRequires maps a module store key to a require resolving from its
// tree (/modules/<key>/node_modules): made once per key, shared by every
// webtask declaring that name@version.
const storeRequires = new Map();

function storeRequire(key) {
  let req = storeRequires.get(key);
  if (req === undefined) {
    req = Module.createRequire(path.join(MODULE_STORE, key, '/'));
    storeRequires.set(key, req);
  }
  return req;
}

// packageName is the package a require id names ('lodash/fp' -> 'lodash',
// '@s/p/x' -> '@s/p'); undefined for relative and absolute paths.
function packageName(id) {
  if (typeof id !== 'string' || id === '' || id[0] === '.' || id[0] === '/') return undefined;
  const parts = id.split('/');
  return id[0] === '@' ? parts.slice(0, 2).join('/') : parts[0];
}

// builtinExtensions are the userspace modules webtaskd provides without
// provisioning (they win over a provisioned module of the same name);
// builtins/index.js fills it at startup.
const builtinExtensions = {};

// builtinRequire loads the runtime's own userspace modules
// (builtinExtensions: the middleware compiler and its auth middleware).
function builtinRequire(id) {
  return builtinExtensions[id];
}
builtinRequire.resolve = (id) => id;

// requireFor is the require of a webtask declaring mods (meta
// wt-node-dependencies, resolved by the daemon: name -> store key, or
// "!why" when that version is not available on this host). Declared
// packages load from their own version's tree; everything else (Node
// built-ins, the global --modules-dir set) as before.
function requireFor(mods) {
  if (!mods) return userRequire;
  const own = Object.prototype.hasOwnProperty;
  const pick = function (id) {
    const name = packageName(id);
    if (name !== undefined && id === name && own.call(builtinExtensions, name)) return builtinRequire;
    if (name === undefined || !own.call(mods, name)) return userRequire;
    const key = mods[name];
    if (typeof key !== 'string' || key.charCodeAt(0) === 33 /* ! */) {
      const err = new Error("Cannot find module '" + id + "'");
      err.code = 'MODULE_NOT_FOUND';
      err.wtReason = typeof key === 'string' ? key.slice(1) : name + ' is not available';
      throw err;
    }
    return storeRequire(key);
  };
  const req = function require(id) {
    return pick(id)(id);
  };
  // Bundled (rootfs/agent.go), this function is renamed to keep it apart
  // from node's own require: webtask code sees node's name.
  Object.defineProperty(req, 'name', { value: 'require' });
  req.resolve = function resolve(id, options) {
    return pick(id).resolve(id, options);
  };
  req.cache = userRequire.cache;
  return req;
}

module.exports = { builtinExtensions, requireFor };
