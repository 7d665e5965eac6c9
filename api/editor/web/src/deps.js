// The npm dependencies pane: the webtask's meta wt-node-dependencies (a
// JSON object of exact versions, saved with the code) and each module's
// provisioning state on this host, polled until it is available or failed.
import { h, replace } from './dom.js';

export const META_DEPS = 'wt-node-dependencies';

// How often queued modules are polled, and for how long at most (the
// daemon's install timeout is 5 minutes by default).
const POLL_MS = 1000;
const POLL_FOR_MS = 10 * 60 * 1000;

// npm's name rules (lower case, URL-safe, optionally @scope/) and the
// exact versions the daemon accepts: no ranges, no tags.
const NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/;
const VERSION = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

// parseDeps reads meta's dependencies ({} when unset or invalid).
export function parseDeps(meta) {
  try {
    const v = JSON.parse(meta[META_DEPS] || '{}');
    return v && typeof v === 'object' && !Array.isArray(v) ? v : {};
  } catch { return {}; }
}

// parseSpec splits "name@version" (the scope's @ is not the separator).
export function parseSpec(text) {
  const s = text.trim();
  const at = s.lastIndexOf('@');
  if (at <= 0) return { error: 'name@version, for example lodash@4.17.21' };
  const name = s.slice(0, at), version = s.slice(at + 1);
  if (name.length > 214 || !NAME.test(name)) return { error: 'not an npm package name: ' + name };
  if (!VERSION.test(version)) return { error: 'an exact version (1.2.3), not a range or tag: ' + version };
  return { name, version };
}

const STATE_TEXT = {
  queued: 'queued: npm is installing it…',
  available: 'available',
  failed: 'failed',
  unknown: 'not on this host yet',
  requesting: 'requesting…',
  unreadable: 'state unknown',
};

export class DepsPane {
  // onChange(deps) gets the new dependencies when the user adds or removes one.
  constructor(client, onChange) {
    this.client = client;
    this.onChange = onChange;
    this.deps = {};
    this.states = new Map(); // name@version -> {state, error}
    this.editable = true;
    this.gen = 0;
    this.el = h('section.pane.deps', { 'aria-label': 'Dependencies' });
  }

  // set shows the dependencies of meta (a webtask opened, or its meta
  // edited) and looks up their states.
  set(meta, { editable } = {}) {
    if (editable !== undefined) this.editable = editable;
    this.deps = parseDeps(meta);
    this.msg = '';
    this.gen++;
    this.render();
    this.refresh(this.gen, Date.now());
  }

  specs() { return Object.keys(this.deps).sort().map((name) => ({ name, version: String(this.deps[name]) })); }

  // refresh reads every dependency's state and polls again while one is
  // queued. gen ties it to the dependencies it was started for.
  async refresh(gen, since) {
    clearTimeout(this.timer);
    const specs = this.specs();
    const byName = new Map();
    await Promise.all([...new Set(specs.map((s) => s.name))].map(async (name) => {
      try { byName.set(name, (await this.client.moduleVersions(name)) || []); } catch (e) { byName.set(name, e); }
    }));
    if (gen !== this.gen) return;
    for (const s of specs) {
      const known = byName.get(s.name);
      const key = s.name + '@' + s.version;
      if (known instanceof Error) {
        // Shown, not polled: the daemon refused the name, or is unreachable.
        if ((this.states.get(key) || {}).state !== 'queued') this.states.set(key, { state: 'unreadable', error: known.message });
        continue;
      }
      const m = known.find((v) => v.version === s.version);
      if (m) this.states.set(key, { state: m.state, error: m.error });
      else if (!(this.states.get(key) || {}).requested) this.states.set(key, { state: 'unknown' });
    }
    this.render();
    const pending = specs.some((s) => (this.states.get(s.name + '@' + s.version) || {}).state === 'queued');
    if (pending && Date.now() - since < POLL_FOR_MS) this.timer = setTimeout(() => this.refresh(gen, since), POLL_MS);
  }

  // provision asks the daemon for specs, shows the states it answers and
  // polls until none is queued.
  async provision(specs) {
    const gen = this.gen;
    for (const s of specs) this.states.set(s.name + '@' + s.version, { state: 'requesting', requested: true });
    this.render();
    try {
      const got = await this.client.requestModules(specs);
      for (const m of got || []) this.states.set(m.name + '@' + m.version, { state: m.state, error: m.error, requested: true });
      this.msg = '';
    } catch (e) {
      for (const s of specs) this.states.delete(s.name + '@' + s.version);
      this.msg = 'cannot request ' + specs.map((s) => s.name + '@' + s.version).join(', ') + ': ' + e.message;
    }
    if (gen !== this.gen) return;
    this.render();
    this.refresh(gen, Date.now());
  }

  add(spec) {
    this.deps = { ...this.deps, [spec.name]: spec.version };
    this.gen++;
    this.onChange(this.deps);
    this.provision([spec]);
  }

  remove(name) {
    const { [name]: _, ...rest } = this.deps;
    this.deps = rest;
    this.gen++;
    this.onChange(this.deps);
    this.render();
    this.refresh(this.gen, Date.now());
  }

  render() {
    const rows = this.specs().map((s) => {
      const st = this.states.get(s.name + '@' + s.version) || { state: 'requesting' };
      const actions = h('td.actions');
      if (this.editable && (st.state === 'failed' || st.state === 'unknown' || st.state === 'unreadable')) {
        actions.append(h('button.dep-install', { type: 'button', onclick: () => this.provision([s]) }, st.state === 'failed' ? 'Retry' : 'Install'));
      }
      if (this.editable) actions.append(h('button.dep-remove', { type: 'button', onclick: () => this.remove(s.name) }, 'Remove'));
      return h('tr', { dataset: { dep: s.name } },
        h('th', { scope: 'row' }, s.name), h('td.dep-version', null, s.version),
        h('td.dep-state', { dataset: { state: st.state } }, STATE_TEXT[st.state] || st.state,
          st.error ? h('div.dep-error', null, st.error) : null),
        actions);
    });
    const input = h('input.dep-spec', { placeholder: 'name@version', 'aria-label': 'new dependency (name@version)', autocomplete: 'off' });
    const err = h('div.error', null, this.msg || '');
    replace(this.el,
      h('h3', null, 'Dependencies'),
      h('p.note', null, 'npm packages this webtask may require, at exact versions (meta ' + META_DEPS + ', saved with the code). ' +
        'Each is installed once on this host; a run needs it available.'),
      rows.length ? h('table', null, h('tbody', null, rows)) : h('p.empty', null, 'none'),
      this.editable ? h('form.dep-add', {
        onsubmit: (ev) => {
          ev.preventDefault();
          const spec = parseSpec(input.value);
          if (spec.error) { err.textContent = spec.error; return; }
          this.add(spec);
        },
      }, input, h('button', { type: 'submit' }, 'Add')) : null,
      err);
  }
}
