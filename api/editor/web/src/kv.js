// Key/value panes: secrets (masked) and meta (wt-* keys validated); they
// edit the webtask's draft, saved with the code.
import { h, replace } from './dom.js';

// validateMeta checks the wt-* keys the daemon and the editor read.
export function validateMeta(key, value) {
  switch (key) {
    case 'wt-editor-linter':
      return value === 'enabled' || value === 'disabled' ? '' : 'wt-editor-linter is "enabled" or "disabled"';
    case 'wt-language':
      return ['javascript', 'typescript'].includes(value) ? '' : 'wt-language is "javascript" or "typescript"';
    case 'wt-node-dependencies':
      try {
        const v = JSON.parse(value);
        return v && typeof v === 'object' && !Array.isArray(v) ? '' : 'wt-node-dependencies is a JSON object of versions';
      } catch { return 'wt-node-dependencies is a JSON object of versions'; }
    case 'wt-compiler':
    case 'wt-editor':
      return value.trim() ? '' : key + ' must not be empty';
    default:
      return key.startsWith('wt-') && !/^wt-[a-z0-9-]+$/.test(key) ? 'wt-* keys are lower case' : '';
  }
}

// KVPane lists a map and edits it. secret: values are masked until revealed.
export class KVPane {
  constructor({ title, secret, onChange, validate }) {
    this.title = title;
    this.secret = secret;
    this.onChange = onChange;
    this.validate = validate || (() => '');
    this.revealed = new Set();
    this.el = h('section.pane.kv', { 'aria-label': title });
    this.map = {};
    this.editable = true;
    this.note = '';
  }

  set(map, { editable, note }) {
    this.map = { ...(map || {}) };
    this.editable = editable;
    this.note = note || '';
    this.revealed.clear();
    this.render();
  }

  render() {
    const rows = Object.keys(this.map).sort().map((k) => this.row(k));
    const name = h('input.kv-new-name', { placeholder: 'name', 'aria-label': 'new ' + this.title + ' name' });
    const value = h('input.kv-new-value', { placeholder: 'value', type: this.secret ? 'password' : 'text', autocomplete: 'off', 'aria-label': 'new ' + this.title + ' value' });
    const err = h('div.error');
    const add = (ev) => {
      ev.preventDefault();
      const k = name.value.trim();
      if (!k) { err.textContent = 'a name is required'; return; }
      const problem = this.validate(k, value.value);
      if (problem) { err.textContent = problem; return; }
      this.map[k] = value.value;
      this.onChange(this.map);
      this.render();
    };
    replace(this.el,
      h('h3', null, this.title),
      this.note ? h('p.note', null, this.note) : null,
      rows.length ? h('table', null, h('tbody', null, rows)) : h('p.empty', null, 'none'),
      this.editable ? h('form.kv-add', { onsubmit: add }, name, value, h('button', { type: 'submit' }, 'Add'), err) : null,
    );
  }

  row(k) {
    const v = this.map[k];
    const shown = !this.secret || this.revealed.has(k);
    const cell = h('td.value', { dataset: { key: k } }, shown ? String(v) : '••••••••');
    const actions = h('td.actions');
    if (this.secret && v !== undefined) {
      actions.append(h('button', {
        type: 'button', title: shown ? 'hide' : 'reveal',
        onclick: () => { shown ? this.revealed.delete(k) : this.revealed.add(k); this.render(); },
      }, shown ? 'Hide' : 'Reveal'));
    }
    if (this.editable) {
      actions.append(h('button', {
        type: 'button',
        onclick: () => {
          const input = h('input', { value: String(v), type: this.secret ? 'password' : 'text', autocomplete: 'off', 'aria-label': 'value of ' + k });
          const done = (ev) => {
            ev.preventDefault();
            const problem = this.validate(k, input.value);
            if (problem) { cell.append(h('div.error', null, problem)); return; }
            this.map[k] = input.value;
            this.onChange(this.map);
            this.render();
          };
          replace(cell, h('form', { onsubmit: done }, input, h('button', { type: 'submit' }, 'OK')));
          input.focus();
        },
      }, 'Edit'));
      actions.append(h('button', {
        type: 'button', onclick: () => { delete this.map[k]; this.onChange(this.map); this.render(); },
      }, 'Delete'));
    }
    return h('tr', null, h('th', { scope: 'row' }, k), cell, actions);
  }
}
