// Drives sandboxjs 5.0.0 against webtaskd: create / run / list /
// getStorage / updateStorage (with an etag conflict) / update() with no
// options / remove / unnamed inline code (sandbox.run, createUrl) / empty
// code. Run by
// TestSandboxJS with WT_URL, WT_TOKEN and WT_CONTAINER; prints one JSON
// line {"ok":true,"steps":[...]} on success, exits 1 with the error
// otherwise.
'use strict';

const assert = require('assert');
const Sandbox = require('sandboxjs');

const profile = Sandbox.init({
    url: process.env.WT_URL,
    token: process.env.WT_TOKEN,
    container: process.env.WT_CONTAINER,
});
const steps = [];
const step = (name) => steps.push(name);

// Counts its runs in ctx.storage.
const code = `module.exports = function (ctx, cb) {
  ctx.storage.get(function (err, data) {
    if (err) return cb(err);
    data = data || { n: 0 };
    data.n++;
    ctx.storage.set(data, function (err) {
      if (err) return cb(err);
      cb(null, { n: data.n, secret: ctx.secrets.S, q: ctx.query.x || null });
    });
  });
};`;

async function main() {
    const wt = await profile.create(code, { name: 'sbx', secrets: { S: 'sv' }, meta: { owner: 'sdk' } });
    assert.strictEqual(wt.claims.jtn, 'sbx');
    step('create');

    let res = await wt.run({ query: { x: 'y' } });
    assert.strictEqual(res.statusCode, 200, res.text);
    assert.deepStrictEqual(res.body, { n: 1, secret: 'sv', q: 'y' });
    step('run');

    let list = await profile.listWebtasks({ meta: { owner: 'sdk' } });
    assert.ok(list.some((w) => w.claims.jtn === 'sbx'), 'listWebtasks with meta lists sbx');
    list = await profile.listWebtasks({ meta: { owner: 'nobody' } });
    assert.ok(!list.some((w) => w.claims.jtn === 'sbx'), 'listWebtasks with another meta value does not list sbx');
    step('list');

    const st = await profile.getStorage({ name: 'sbx' });
    assert.deepStrictEqual(st.data, { n: 1 });
    assert.ok(st.etag !== undefined && st.etag !== null, 'getStorage returns an etag');
    step('getStorage');

    await profile.updateStorage({ data: { n: 10 }, etag: st.etag }, { name: 'sbx' });
    step('updateStorage');

    let conflict;
    try {
        await profile.updateStorage({ data: { n: 99 }, etag: st.etag }, { name: 'sbx' });
    } catch (err) {
        conflict = err;
    }
    assert.ok(conflict, 'updateStorage with a stale etag must fail');
    assert.strictEqual(conflict.statusCode, 409, String(conflict));
    const st2 = await profile.getStorage({ name: 'sbx' });
    assert.deepStrictEqual(st2.data, { n: 10 }, 'the stale write changed nothing');
    assert.notStrictEqual(String(st2.etag), String(st.etag));
    step('updateStorage-conflict');

    res = await wt.run();
    assert.deepStrictEqual(res.body, { n: 11, secret: 'sv', q: null });
    step('run-sees-storage');

    // update() with no options re-issues the inspected claims without
    // code: the stored code is kept, and the secrets and meta the claims
    // carry.
    const updated = await wt.update();
    assert.strictEqual(updated.claims.jtn, 'sbx');
    const claims = await updated.inspect({ decrypt: true, fetch_code: true, meta: true });
    assert.deepStrictEqual(claims.ectx, { S: 'sv' }, 'inspect({decrypt: true}) after update shows the secrets');
    assert.strictEqual(claims.code, code, 'update() kept the code');
    assert.deepStrictEqual(claims.meta, { owner: 'sdk' }, 'update() kept the meta');
    res = await updated.run();
    assert.strictEqual(res.statusCode, 200, res.text);
    assert.deepStrictEqual(res.body, { n: 12, secret: 'sv', q: null });
    step('update-keeps-code');

    await wt.remove();
    list = await profile.listWebtasks();
    assert.ok(!list.some((w) => w.claims.jtn === 'sbx'), 'removed webtask is not listed');
    let gone;
    try {
        await profile.getStorage({ name: 'sbx' });
    } catch (err) {
        gone = err;
    }
    assert.ok(gone && gone.statusCode === 404, 'storage is removed with the webtask: ' + gone);
    step('remove');

    // Unnamed inline code: sandbox.run issues a code token (no jtn) and
    // runs it through the Location URL (?key=), secrets sealed in it.
    const unnamed = `module.exports = function (ctx, cb) { cb(null, { s: ctx.secrets.S, q: ctx.query.x || null }); };`;
    res = await profile.run(unnamed, { secrets: { S: 'u' }, query: { x: 'z' } });
    assert.strictEqual(res.statusCode, 200, res.text);
    assert.deepStrictEqual(res.body, { s: 'u', q: 'z' });
    const url = await profile.createUrl({ code: unnamed, secrets: { S: 'v' } });
    assert.ok(/\/api\/run\/[^/?]+\?key=/.test(url), 'createUrl of unnamed code: ' + url);
    step('run-unnamed-code');

    // Empty code is valid code: created, and it fails when run with the
    // runtime's compile error.
    const empty = await profile.create('', { name: 'empty' });
    assert.strictEqual(empty.claims.jtn, 'empty');
    res = await empty.run();
    assert.strictEqual(res.statusCode, 400, res.text);
    const noFunction = 'Unable to compile submitted JavaScript. Error: Supplied code must return or export a function.';
    assert.deepStrictEqual(res.body, { code: 400, error: noFunction, details: noFunction });
    await empty.remove();
    step('create-empty-code');
}

main().then(
    () => console.log(JSON.stringify({ ok: true, steps })),
    (err) => {
        console.error(JSON.stringify({ ok: false, steps, error: String(err && err.stack || err) }));
        process.exit(1);
    }
);
