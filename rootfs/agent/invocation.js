'use strict';
// The per-call state: Invocation (also the AsyncLocalStorage store), the
// AsyncLocalStorage that finds it from user code, and the map of the
// invocations still running.

const { AsyncLocalStorage } = require('async_hooks');
const { stringify } = require('./protocol');

// STREAM_WINDOW_BYTES is the credit a streamed response starts with.
const STREAM_WINDOW_BYTES = 256 * 1024; // sandbox/agent.StreamWindowBytes

const als = new AsyncLocalStorage();

// running maps the id of every invocation that can still be aborted (or
// get credit) to its Invocation: from invoke to its result, or to the end
// of its streamed response.
const running = new Map();

// Invocation is the per-call state, also the AsyncLocalStorage store.
// ref is the invocation's part of its storage and token calls: its id and
// its capability (the daemon's secret for this invocation alone).
function Invocation(id, cap, req) {
  this.id = id;
  this.ref = '"id":' + id + ',"cap":' + stringify(cap);
  this.req = req;
  this.done = false; // the result or the head was sent (or aborted)
  // Streamed response state (see "Streaming" below).
  this.credit = STREAM_WINDOW_BYTES;
  this.queue = []; // {buf, off, cb} waiting for credit
  this.queuedBytes = 0;
  this.endPending = false; // end() was called, "end" goes once the queue is sent
  this.finished = false; // "end" was sent
  this.aborted = false;
  this.onDrain = undefined; // called when the queue empties
  this.onAbort = undefined; // called when the daemon aborts
  this.onFinish = undefined; // called once "end" was sent
  // Streamed request body (req.body_more): see "Request bodies" below.
  this.bodyMore = req.body_more === true;
  this.bodyCollect = false; // gather it whole before running (parsed bodies)
  this.bodyParts = undefined;
  this.reqStream = undefined; // the 3-arity req the chunks are pushed into
  this.reqOwed = 0; // credit held back while req is above its high water mark
  this.resume = undefined; // runs the webtask once a collected body is whole

  this.logBytes = 0;
  this.logLimit = typeof req.log_limit === 'number' ? req.log_limit : 0;
  this.truncated = false;
  this.wt = undefined; // lazily built module.webtask view
  this.storage = undefined; // lazily built ctx.storage
  this.reqIDJSON = undefined; // JSON of req_id, built by the first log line
}

module.exports = { als, running, Invocation, STREAM_WINDOW_BYTES };
