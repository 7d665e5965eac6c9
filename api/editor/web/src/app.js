// The Extension Editor page (GET /edit/{container}). The token comes from
// the address bar's fragment (#/{name}/{token}, #/{token}, or Extend's
// #webtaskName=…&token=…), a prompt, or, when embedded, a postMessage from
// the embedding page. It is removed from the address bar at once and kept
// only in this tab's memory.
import './app.css';
import { h, replace, Emitter } from './dom.js';
import { Client, ApiError } from './api.js';
import { CodeEditor } from './code.js';
import { KVPane, validateMeta } from './kv.js';
import { Runner } from './runner.js';
import { LogsPane } from './logs.js';
import { StoragePane, CronPane } from './data.js';
import { DepsPane, META_DEPS } from './deps.js';
import { TEMPLATES } from './templates.js';
import { Theme } from './theme.js';
import { Bridge } from './bridge.js';

const JWT = /^[\w-]+\.[\w-]+\.[\w-]+$/;

// jwtClaims reads a token's (unencrypted) claims without a request: a
// token never goes into a URL, not even the webtask's own.
function jwtClaims(tok) {
  try {
    const b64 = tok.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch { return {}; }
}

// takeCredentials reads the fragment and removes the token from the
// address bar (and from the history entry) before anything else runs.
export function takeCredentials(loc) {
  const hash = loc.hash.replace(/^#/, '');
  let name = '', token = '';
  if (hash.startsWith('/')) {
    const parts = hash.slice(1).split('/').filter(Boolean);
    if (parts.length >= 2) { name = decodeURIComponent(parts[0]); token = parts[1]; } else if (parts.length === 1) {
      if (JWT.test(parts[0])) token = parts[0]; else name = decodeURIComponent(parts[0]);
    }
  } else if (hash) {
    const p = new URLSearchParams(hash);
    token = p.get('token') || '';
    name = p.get('webtaskName') || p.get('name') || '';
  }
  const clean = loc.pathname + loc.search + (name ? '#/' + encodeURIComponent(name) : '');
  history.replaceState(null, '', clean);
  return { name, token };
}

class App {
  constructor(root, container, token, opts, bridge) {
    this.container = container;
    this.opts = opts;
    this.bridge = bridge;
    this.events = new Emitter();
    this.client = new Client(container, token);
    this.name = '';
    this.webtask = null;
    this.dirty = false;
    this.secrets = {};
    this.meta = {};
    this.params = {};
    this.theme = new Theme((dark) => this.code && this.code.setDark(dark));

    const names = () => ({ secrets: Object.keys(this.secrets), params: Object.keys(this.params), meta: Object.keys(this.meta) });
    this.status = h('span.status', { role: 'status', 'aria-live': 'polite' });
    this.title = h('span.webtask-name', null, '');
    this.dirtyMark = h('span.dirty', { title: 'unsaved changes', hidden: true }, '●');
    const themeSel = h('select.theme', { 'aria-label': 'theme', onchange: () => this.theme.set(themeSel.value) },
      ['auto', 'light', 'dark'].map((t) => h('option', { value: t }, t)));
    this.themeSel = themeSel;
    this.list = h('ul.webtasks', { 'aria-label': 'webtasks' });
    this.codeHost = h('div.code', { 'aria-label': 'code' });
    this.secretsPane = new KVPane({ title: 'Secrets', secret: true, onChange: (m) => { this.secrets = m; this.markDirty(); } });
    this.metaPane = new KVPane({
      title: 'Meta',
      onChange: (m) => { this.setMeta(m); this.deps.set(m); },
      validate: validateMeta,
    });
    this.deps = new DepsPane(this.client, (deps) => {
      const m = { ...this.meta };
      if (Object.keys(deps).length) m[META_DEPS] = JSON.stringify(deps); else delete m[META_DEPS];
      this.setMeta(m);
      this.metaPane.set(m, { editable: this.opts.allowEditingMeta !== false });
    });
    this.paramsPane = new KVPane({ title: 'Params' });
    this.runner = new Runner({
      container, getName: () => this.name,
      beforeRun: () => this.save(),
      onResult: (req, res) => this.emit('didRun', { request: req, response: { status: res.status, headers: res.headers, body: res.body, ms: res.ms } }),
    });
    this.logs = new LogsPane(this.client, () => this.name);
    this.storage = new StoragePane(this.client, () => this.name);
    this.cron = new CronPane(this.client, () => this.name);

    const tabs = [['Runner', this.runner.el], ['Secrets', this.secretsPane.el], ['Meta', this.metaPane.el],
      ['Dependencies', this.deps.el], ['Params', this.paramsPane.el], ['Storage', this.storage.el], ['Schedule', this.cron.el]]
      .filter(([t]) => (t !== 'Storage' || opts.allowEditingStorage !== false) && (t !== 'Schedule' || opts.allowEditingSchedule !== false));
    this.tabBar = h('div.tabs', { role: 'tablist' });
    this.tabBody = h('div.tab-body');
    for (const [t, el] of tabs) {
      el.hidden = true;
      this.tabBody.append(el);
      this.tabBar.append(h('button.tab', { type: 'button', role: 'tab', dataset: { tab: t }, onclick: () => this.showTab(t) }, t));
    }
    this.tabs = new Map(tabs);

    this.createForm = this.buildCreateForm();
    this.logsBox = h('div.logs-box', { hidden: opts.allowAccessingLogs === false }, this.logs.el);
    replace(root,
      h('header.bar', null,
        h('span.brand', null, 'webtaskd'), h('span.container', { title: 'container' }, container), ' / ',
        this.title, this.dirtyMark,
        h('button.primary.save', { type: 'button', title: 'Save (Ctrl/Cmd-S)', onclick: () => this.save() }, 'Save'),
        h('button.run', { type: 'button', title: 'Save and run (Ctrl/Cmd-Enter)', onclick: () => this.run() }, 'Run'),
        opts.allowAccessingLogs === false ? null : h('button.toggle-logs', { type: 'button', title: 'Logs (Ctrl/Cmd-L)', onclick: () => this.toggleLogs() }, 'Logs'),
        themeSel, this.status),
      h('div.main', null,
        h('aside.side-list', { hidden: opts.allowSwitching === false }, h('h3', null, 'Webtasks'), this.list, this.createForm),
        this.codeHost,
        h('div.side', null, this.tabBar, this.tabBody)),
      this.logsBox);
    this.code = new CodeEditor(this.codeHost, {
      onChange: () => this.markDirty(), names, check: (code) => this.client.checkSyntax(code, this.meta),
    });
    this.theme.set(opts.theme || 'auto');
    themeSel.value = this.theme.mode;
    this.showTab('Runner');

    window.addEventListener('keydown', (ev) => this.onKey(ev), true);
    window.addEventListener('beforeunload', (ev) => {
      if (this.dirty && opts.preventClosingWindowIfDirty !== false) { ev.preventDefault(); ev.returnValue = ''; }
    });
  }

  emit(name, data) {
    this.events.emit(name, data);
    this.bridge?.event(name, data);
  }

  setStatus(text, isError) {
    this.status.textContent = text;
    this.status.classList.toggle('error', !!isError);
  }

  fail(what, e) {
    const msg = what + ': ' + (e && e.message ? e.message : String(e));
    this.setStatus(msg, true);
    this.emit('error', { message: msg, status: e instanceof ApiError ? e.status : undefined });
  }

  onKey(ev) {
    if (!(ev.ctrlKey || ev.metaKey) || ev.altKey) return;
    const k = ev.key.toLowerCase();
    if (k === 's') { ev.preventDefault(); ev.stopPropagation(); this.save(); } else if (k === 'enter') {
      ev.preventDefault(); ev.stopPropagation(); this.run();
    } else if (k === 'l' && this.opts.allowAccessingLogs !== false) { ev.preventDefault(); ev.stopPropagation(); this.toggleLogs(true); }
  }

  // run saves and runs with the runner's request, showing the runner (its
  // response) when another pane was open.
  run() {
    if (this.tabs.has('Runner')) this.showTab('Runner');
    return this.runner.run();
  }

  toggleLogs(show) {
    this.logsBox.hidden = show === undefined ? !this.logsBox.hidden : !show;
    if (!this.logsBox.hidden) this.logs.filter.focus();
  }

  showTab(t) {
    for (const [name, el] of this.tabs) el.hidden = name !== t;
    for (const b of this.tabBar.children) b.setAttribute('aria-selected', String(b.dataset.tab === t));
  }

  // setMeta replaces the draft's meta (unsaved): the code's mode and
  // linter follow it.
  setMeta(m) {
    this.meta = m;
    this.code.setMeta(m);
    this.codeHost.dataset.language = this.code.language;
    this.markDirty();
  }

  markDirty() {
    this.dirty = true;
    this.dirtyMark.hidden = false;
    this.bridge?.state({ code: this.code.getCode(), dirty: true });
  }

  clean() {
    this.dirty = false;
    this.dirtyMark.hidden = true;
    this.bridge?.state({ code: this.code.getCode(), dirty: false });
  }

  async start(name) {
    if (this.opts.allowAccessingLogs !== false) this.logs.start();
    await this.refreshList();
    if (!name && this.items && this.items.length) name = this.items[0].name;
    // didLoad first: an embedding page registers its handlers when
    // create() resolves, in time for didLoadWebtask.
    this.emit('didLoad', { container: this.container });
    if (name) await this.open(name, this.opts.createIfNotExists);
  }

  async refreshList() {
    try {
      this.items = (await this.client.list()) || [];
    } catch (e) { this.fail('cannot list webtasks', e); this.items = []; }
    replace(this.list, this.items.map((w) => h('li', { dataset: { name: w.name } },
      h('button.link.open', { type: 'button', 'aria-current': String(w.name === this.name), onclick: () => this.open(w.name) }, w.name))));
  }

  confirmDiscard() {
    return !this.dirty || window.confirm('Discard the unsaved changes of ' + this.name + '?');
  }

  async open(name, createIfNotExists) {
    if (name !== this.name && !this.confirmDiscard()) return;
    let w;
    try {
      w = await this.client.get(name);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404 && createIfNotExists) {
        const t = typeof createIfNotExists === 'object' ? createIfNotExists : {};
        await this.create(name, { code: t.code || TEMPLATES[0].code, secrets: t.secrets, meta: t.meta });
        return;
      }
      this.fail('cannot open ' + name, e);
      return;
    }
    this.name = name;
    this.webtask = w;
    this.title.textContent = name;
    this.secrets = w.secretsVisible ? { ...(w.secrets || {}) } : {};
    this.meta = { ...(w.meta || {}) };
    this.code.load(w.code || '', this.meta);
    this.codeHost.dataset.language = this.code.language;
    this.clean();
    const mayEditSecrets = w.secretsVisible && this.opts.allowEditingSecrets !== false;
    this.secretsPane.set(this.secrets, {
      editable: mayEditSecrets,
      note: w.secretsVisible ? '' : 'This token may not decrypt the secrets of this webtask; saving keeps them unchanged.',
    });
    this.metaPane.set(this.meta, { editable: this.opts.allowEditingMeta !== false });
    this.deps.set(this.meta, { editable: this.opts.allowEditingMeta !== false && this.opts.allowEditingDependencies !== false });
    this.params = jwtClaims(w.token).pctx || {};
    this.paramsPane.set(this.params, { editable: false, note: 'Params are claims of the webtask\'s token (pctx), set when it is issued.' });
    for (const li of this.list.children) li.firstChild.setAttribute('aria-current', String(li.dataset.name === name));
    this.storage.load();
    this.cron.load();
    this.logs.render();
    this.setStatus('opened ' + name);
    this.emit('didLoadWebtask', { name, meta: this.meta });
  }

  // save stores the code, meta and (when visible) secrets; true on success.
  async save() {
    if (!this.name) { this.setStatus('no webtask open', true); return false; }
    const code = this.code.getCode();
    try {
      const w = await this.client.put(this.name, {
        code, meta: this.meta, secrets: this.webtask.secretsVisible ? this.secrets : undefined,
      });
      this.webtask.token = w.token;
      this.clean();
      this.setStatus('saved ' + this.name);
      this.emit('didSaveWebtask', { name: this.name });
      return true;
    } catch (e) { this.fail('cannot save ' + this.name, e); return false; }
  }

  async create(name, { code, secrets, meta }) {
    try {
      await this.client.put(name, { code, secrets: secrets || {}, meta: meta || {} });
    } catch (e) { this.fail('cannot create ' + name, e); return; }
    this.dirty = false;
    await this.refreshList();
    await this.open(name);
  }

  // rename moves a webtask: code, secrets, meta, storage and cron job go to
  // the new name, then the old one is deleted (with its storage and job).
  // It needs the secrets (a token that may decrypt them).
  async rename(to) {
    const from = this.name;
    if (!from || !to || to === from) return;
    if (this.dirty && !(await this.save())) return;
    const c = this.client;
    try {
      const w = await c.get(from);
      if (!w.secretsVisible) throw new Error('this token may not decrypt the secrets, which a rename must copy');
      await c.put(to, { code: w.code, secrets: w.secrets || {}, meta: w.meta || {} });
      const data = await c.getData(from);
      if (data.etag !== null) await c.putData(to, data.data, null);
      const job = await c.getCron(from);
      if (job) await c.putCron(to, { schedule: job.schedule, tz: job.tz, state: job.state, meta: job.meta });
      await c.remove(from);
    } catch (e) { this.fail('cannot rename ' + from, e); await this.refreshList(); return; }
    this.name = '';
    await this.refreshList();
    await this.open(to);
  }

  async remove() {
    const name = this.name;
    try { await this.client.remove(name); } catch (e) { this.fail('cannot delete ' + name, e); return; }
    this.dirty = false;
    this.name = '';
    this.webtask = null;
    this.title.textContent = '';
    this.code.load('', {});
    this.clean();
    await this.refreshList();
    if (this.items.length) await this.open(this.items[0].name);
    this.setStatus('deleted ' + name);
  }

  buildCreateForm() {
    const name = h('input.new-name', { placeholder: 'new webtask name', 'aria-label': 'new webtask name', required: true });
    const tpl = h('select.new-template', { 'aria-label': 'template' }, TEMPLATES.map((t, i) => h('option', { value: String(i) }, t.name)));
    const renameTo = h('input.rename-to', { placeholder: 'rename to', 'aria-label': 'rename to' });
    let armed = false;
    const del = h('button.delete', {
      type: 'button',
      onclick: () => {
        if (!armed) { armed = true; del.textContent = 'Really delete?'; return; }
        armed = false; del.textContent = 'Delete'; this.remove();
      },
    }, 'Delete');
    return h('div.manage', null,
      this.opts.allowCreating === false ? null : h('form.create', {
        onsubmit: (ev) => {
          ev.preventDefault();
          if (!this.confirmDiscard()) return;
          const t = TEMPLATES[Number(tpl.value)];
          this.create(name.value.trim(), t);
          name.value = '';
        },
      }, name, tpl, h('button', { type: 'submit' }, 'Create')),
      this.opts.allowRenaming === false ? null : h('form.rename', {
        onsubmit: (ev) => { ev.preventDefault(); this.rename(renameTo.value.trim()); renameTo.value = ''; },
      }, renameTo, h('button', { type: 'submit' }, 'Rename')),
      this.opts.allowDeleting === false ? null : del);
  }
}

function promptToken(root, container) {
  return new Promise((resolve) => {
    const input = h('input.token-input', { type: 'password', autocomplete: 'off', 'aria-label': 'token', placeholder: 'webtask token' });
    replace(root, h('form.token-prompt', {
      onsubmit: (ev) => { ev.preventDefault(); if (input.value.trim()) resolve(input.value.trim()); },
    }, h('h2', null, 'Open container ' + container), h('p', null, 'Paste a token for this container. It stays in this tab\'s memory only.'),
    input, h('button.primary', { type: 'submit' }, 'Open')));
    input.focus();
  });
}

async function main() {
  const root = document.getElementById('app');
  const seg = location.pathname.replace(/^\/edit\//, '').split('/')[0];
  const container = decodeURIComponent(seg || '');
  const embedded = new URLSearchParams(location.search).has('embed') && window.parent !== window;
  let { name, token } = takeCredentials(location);
  let opts = {};
  let bridge = null;
  if (embedded) {
    bridge = new Bridge(window.parent);
    const init = await bridge.waitInit();
    token = init.token;
    opts = init.options || {};
    name = opts.webtaskName || name;
  }
  if (!token) token = await promptToken(root, container);
  const app = new App(root, container, token, opts, bridge);
  if (bridge) bridge.serve(app);
  await app.start(name);
}

main().catch((e) => console.error('editor failed to start:', e.message));
