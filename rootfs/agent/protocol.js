'use strict';
// The runtime channel (fd 3) and the primordials every part of the agent
// uses: newline-delimited JSON frames coalesced into one write per tick,
// lines read and handed to the dispatcher, the agent's own log, and the
// globals captured before any user code runs.

const net = require('net');

// Captured before any user code runs, so user code replacing globals cannot
// break the protocol.
const stringify = JSON.stringify;
const parse = JSON.parse;
const BufferFrom = Buffer.from;
const nextTick = process.nextTick;
// atob/btoa map base64 to latin1 strings (one char per byte) and back:
// exactly the header value conversions, without a Buffer per value.
const atob = globalThis.atob;
const btoa = globalThis.btoa;

const origStdoutWrite = process.stdout.write;
const origStderrWrite = process.stderr.write;

function agentLog(msg) {
  try {
    origStderrWrite.call(process.stderr, 'webtaskd-agent: ' + msg + '\n');
  } catch (_) {
    // nothing left to report to
  }
}

const chan = new net.Socket({ fd: 3, readable: true, writable: true });
chan.setEncoding('utf8');
chan.on('error', () => process.exit(1));
chan.on('end', () => process.exit(0));
chan.on('close', () => process.exit(0));

// Messages written in one tick leave in one write: the first schedules a
// flush (nextTick) and every message of the tick is appended to one
// string, which leaves as one plain write (a corked socket would write
// the same bytes with writev, one buffer and one bookkeeping entry per
// message). The write syscall (which wakes the daemon) is most of the
// agent's cost per call; when the daemon sends many invocations in one
// chunk, their results share it. A tick that sends more than
// FLUSH_CHARS writes what it has at once, so the string stays bounded.
const FLUSH_CHARS = 1 << 20;
let out = '';
let flushScheduled = false;

function flushOut() {
  flushScheduled = false;
  if (out.length === 0) return;
  const s = out;
  out = '';
  chan.write(s);
}

function sendRaw(line) {
  out += line;
  if (out.length >= FLUSH_CHARS) {
    const s = out;
    out = '';
    chan.write(s);
    return;
  }
  if (!flushScheduled) {
    flushScheduled = true;
    nextTick(flushOut);
  }
}

// listen hands every complete line read from the channel to handleLine.
function listen(handleLine) {
  let inbuf = '';
  chan.on('data', (chunk) => {
    if (inbuf.length !== 0) {
      chunk = inbuf + chunk;
      inbuf = '';
    }
    let start = 0;
    let nl;
    while ((nl = chunk.indexOf('\n', start)) !== -1) {
      if (nl > start) handleLine(chunk.slice(start, nl));
      start = nl + 1;
    }
    if (start < chunk.length) inbuf = chunk.slice(start);
  });
}

function safeToString(v) {
  try {
    return String(v);
  } catch (_) {
    return Object.prototype.toString.call(v);
  }
}

module.exports = {
  stringify,
  parse,
  BufferFrom,
  nextTick,
  atob,
  btoa,
  origStdoutWrite,
  origStderrWrite,
  agentLog,
  sendRaw,
  listen,
  safeToString,
};
