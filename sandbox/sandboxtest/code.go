// Package sandboxtest holds webtask code that tests of the sandbox and of
// the daemon both run against real sandboxes.
package sandboxtest

// ForkBombCode is a webtask (cb) that tries to spawn 60 node processes that
// sleep, and answers {spawned, errors} with the number that started and the
// spawn failures counted by error code (EAGAIN at the pids limit).
const ForkBombCode = `module.exports = function (cb) {
  const cp = require('child_process');
  const errors = {};
  let spawned = 0, pending = 0;
  const done = () => { if (--pending === 0) cb(null, { spawned, errors }); };
  for (let i = 0; i < 60; i++) {
    pending++;
    let c;
    try {
      c = cp.spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'], { stdio: 'ignore' });
    } catch (e) {
      errors[e.code] = (errors[e.code] || 0) + 1;
      done();
      continue;
    }
    c.on('spawn', () => { spawned++; done(); });
    c.on('error', (e) => { errors[e.code] = (errors[e.code] || 0) + 1; done(); });
  }
};`
