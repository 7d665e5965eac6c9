'use strict';
// The webtask's calls back to the daemon: ctx.storage (and
// module.webtask.storage) and ctx.create_token / create_token_url, sent as
// "storage" and "token" messages and answered by sid.

const { AsyncResource } = require('async_hooks');
const { stringify, parse, nextTick, agentLog, sendRaw } = require('./protocol');

// MAX_STORAGE_BYTES is the largest storage document (its JSON text), as the
// daemon enforces it: 500 KB.
const MAX_STORAGE_BYTES = 500 * 1024;

// Storage (ctx.storage, module.webtask.storage): one JSON document per named
// webtask, kept by the daemon. Each invocation has its own storage object
// that remembers the etag of its last get (or set), for optimistic
// concurrency.

let nextSid = 0;
// storageCalls maps sid -> callback bound to the caller's async context.
const storageCalls = new Map();

function storageError(code, message) {
  const err = new Error(message);
  err.code = code;
  return err;
}

// storageCall sends one storage (or, with op 'token', token) call of inv;
// cb gets the answer with the same sid.
function storageCall(inv, fields, cb, op) {
  const sid = ++nextSid;
  storageCalls.set(sid, AsyncResource.bind(cb));
  sendRaw('{"op":"' + (op || 'storage') + '",' + inv.ref + ',"sid":' + sid + ',' + fields + '}\n');
}

function onStorageResult(m) {
  const cb = storageCalls.get(m.sid);
  if (cb === undefined) {
    agentLog('storage_result for unknown sid ' + String(m.sid));
    return;
  }
  storageCalls.delete(m.sid);
  cb(m);
}

// parseDoc turns the daemon's JSON text into the value (undefined: none).
function parseDoc(text) {
  return typeof text === 'string' ? parse(text) : undefined;
}

function storageOf(inv) {
  if (inv.storage === undefined) inv.storage = makeStorage(inv);
  return inv.storage;
}

function makeStorage(inv) {
  let etag; // undefined until the first get (or successful set)
  const named = typeof inv.req.jtn === 'string' && inv.req.jtn.length !== 0;
  return {
    get(options, cb) {
      if (typeof options === 'function') cb = options;
      if (typeof cb !== 'function') throw new TypeError('storage.get requires a callback');
      if (!named) {
        nextTick(cb, storageError(400, 'storage is only available to named webtasks'));
        return;
      }
      storageCall(inv, '"action":"get"', (r) => {
        if (r.code) {
          cb(storageError(r.code, r.message || 'storage error'));
          return;
        }
        let data;
        try {
          data = parseDoc(r.data);
        } catch (e) {
          cb(storageError(500, 'stored document is not valid JSON'));
          return;
        }
        etag = typeof r.etag === 'number' ? r.etag : 0;
        cb(null, data);
      });
    },
    set(data, options, cb) {
      if (typeof options === 'function') {
        cb = options;
        options = undefined;
      }
      if (typeof cb !== 'function') cb = function () {};
      const force = !!(options && options.force);
      if (!named) {
        nextTick(cb, storageError(400, 'storage is only available to named webtasks'));
        return;
      }
      if (!force && etag === undefined) {
        // As the local runtime does: a set must follow a get, or force.
        throw new Error('storage.set was called before storage.get; call storage.get first or pass { force: 1 }');
      }
      let text;
      try {
        text = data === undefined || data === null ? 'null' : stringify(data);
      } catch (e) {
        nextTick(cb, storageError(400, 'storage data is not JSON-serializable: ' + e.message));
        return;
      }
      if (typeof text !== 'string') {
        nextTick(cb, storageError(400, 'storage data is not JSON-serializable'));
        return;
      }
      if (Buffer.byteLength(text) > MAX_STORAGE_BYTES) {
        nextTick(cb, storageError(413, 'storage data exceeds ' + MAX_STORAGE_BYTES + ' bytes'));
        return;
      }
      const fields = '"action":"set","data":' + stringify(text) + (force ? ',"force":true' : ',"etag":' + etag);
      storageCall(inv, fields, (r) => {
        if (r.code) {
          const err = storageError(r.code, r.message || 'storage error');
          if (r.code === 409) {
            try {
              err.conflict = parseDoc(r.data);
            } catch (_) {
              err.conflict = undefined;
            }
            // The next set is checked against the document the conflict
            // carries: merge it into your data and set again.
            etag = typeof r.etag === 'number' ? r.etag : 0;
          }
          cb(err);
          return;
        }
        etag = typeof r.etag === 'number' ? r.etag : 0;
        cb(null);
      });
    },
  };
}

// ---------------------------------------------------------------------------
// ctx.create_token(options, cb) / ctx.create_token_url(options, cb): the
// daemon issues a child of the token this invocation runs under, narrowed
// as POST /api/tokens/issue narrows (options are its claims; a string is
// {url: string}). cb(err) carries err.code (the API's HTTP status); on
// success cb(null, token) or cb(null, url). Calls share the storage sids.

function tokenCreator(inv, asURL) {
  return function createToken(options, cb) {
    if (typeof options === 'function') {
      cb = options;
      options = undefined;
    }
    if (typeof cb !== 'function') throw new TypeError('create_token requires a callback');
    if (typeof options === 'string') options = { url: options };
    if (options === undefined || options === null) options = {};
    if (typeof options !== 'object' || Array.isArray(options)) {
      nextTick(cb, storageError(400, 'the token options must be an object'));
      return;
    }
    let claims;
    try {
      claims = stringify(options);
    } catch (e) {
      nextTick(cb, storageError(400, 'the token options are not JSON-serializable: ' + e.message));
      return;
    }
    storageCall(inv, '"claims":' + claims + (asURL ? ',"as_url":true' : ''), (r) => {
      if (r.code) {
        cb(storageError(r.code, r.message || 'token creation failed'));
        return;
      }
      cb(null, asURL ? r.url : r.token);
    }, 'token');
  };
}

module.exports = { onStorageResult, storageOf, tokenCreator };
