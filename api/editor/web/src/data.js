// Storage and cron panes of the open webtask.
import { h, replace } from './dom.js';
import { ApiError } from './api.js';

// StoragePane edits the webtask's storage document with its etag; a 409
// shows both versions and lets the user keep theirs or take the stored one
// (the user's text stays in the editor until they choose).
export class StoragePane {
  constructor(client, getName) {
    this.client = client;
    this.getName = getName;
    this.etag = null;
    this.text = h('textarea.storage-data', { rows: 10, spellcheck: false, 'aria-label': 'storage data' });
    this.msg = h('div.storage-msg', { 'aria-live': 'polite' });
    this.conflict = h('div.storage-conflict', { hidden: true });
    this.el = h('section.pane.storage', { 'aria-label': 'storage' },
      h('h3', null, 'Storage'),
      this.text,
      h('div.buttons', null,
        h('button.primary.storage-save', { type: 'button', onclick: () => this.save(false) }, 'Save storage'),
        h('button', { type: 'button', onclick: () => this.load() }, 'Reload')),
      this.msg, this.conflict);
  }

  // load shows the open webtask's storage (an answer for a webtask no
  // longer open is dropped).
  async load() {
    this.conflict.hidden = true;
    const seq = (this.seq = (this.seq || 0) + 1);
    const name = this.getName();
    if (!name) return;
    try {
      const d = await this.client.getData(name);
      if (seq !== this.seq) return;
      this.etag = d.etag;
      this.text.value = d.data || '';
      this.msg.textContent = d.etag === null ? 'never written' : 'version ' + d.etag;
    } catch (e) { if (seq === this.seq) this.msg.textContent = 'cannot load storage: ' + e.message; }
  }

  async save(force) {
    const mine = this.text.value;
    const name = this.getName();
    try {
      const d = await this.client.putData(name, mine, force ? undefined : this.etag);
      this.etag = d.etag;
      this.conflict.hidden = true;
      this.msg.textContent = 'saved, version ' + d.etag;
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 409) { this.msg.textContent = 'not saved: ' + e.message; return; }
      let theirs = { data: '', etag: null };
      try { theirs = await this.client.getData(name); } catch { /* shown as empty */ }
      this.msg.textContent = 'conflict: someone else wrote the storage since you loaded it; your text is kept below';
      this.conflict.hidden = false;
      replace(this.conflict,
        h('div.cols', null,
          h('div', null, h('h4', null, 'Yours'), h('pre.conflict-mine', null, mine)),
          h('div', null, h('h4', null, 'Stored (version ' + theirs.etag + ')'), h('pre.conflict-theirs', null, theirs.data || ''))),
        h('div.buttons', null,
          h('button.primary.conflict-keep-mine', { type: 'button', onclick: () => { this.etag = theirs.etag; this.text.value = mine; this.save(false); } }, 'Keep mine (overwrite)'),
          h('button.conflict-take-theirs', { type: 'button', onclick: () => { this.etag = theirs.etag; this.text.value = theirs.data || ''; this.conflict.hidden = true; this.msg.textContent = 'version ' + theirs.etag; } }, 'Take stored')));
    }
  }
}

// CronPane shows and edits the webtask's cron job.
export class CronPane {
  constructor(client, getName) {
    this.client = client;
    this.getName = getName;
    this.schedule = h('input.cron-schedule', { placeholder: '*/5 * * * *', 'aria-label': 'schedule', oninput: () => this.preview() });
    this.tz = h('input.cron-tz', { placeholder: 'UTC', 'aria-label': 'time zone', oninput: () => this.preview() });
    this.active = h('input.cron-active', { type: 'checkbox', checked: true, 'aria-label': 'active' });
    this.next = h('ol.cron-next');
    this.msg = h('div.cron-msg', { 'aria-live': 'polite' });
    this.history = h('ol.cron-history');
    this.el = h('section.pane.cron', { 'aria-label': 'cron' },
      h('h3', null, 'Schedule'),
      h('label', null, 'Schedule ', this.schedule),
      h('label', null, 'Time zone ', this.tz),
      h('label', null, this.active, ' active'),
      h('div.buttons', null,
        h('button.primary', { type: 'button', onclick: () => this.save() }, 'Save schedule'),
        h('button', { type: 'button', onclick: () => this.remove() }, 'Remove schedule')),
      this.msg, h('h4', null, 'Next runs'), this.next, h('h4', null, 'History'), this.history);
  }

  // load shows the job of the open webtask. Like preview, it is bound to
  // the webtask open when it started: once another one is (or none, in the
  // middle of a rename or delete), it asks and shows nothing more.
  async load() {
    clearTimeout(this.timer);
    const seq = (this.seq = (this.seq || 0) + 1); // a preview or load in flight is stale now
    const name = this.getName();
    replace(this.history); replace(this.next);
    if (!name) return;
    const current = () => seq === this.seq && this.getName() === name;
    try {
      const job = await this.client.getCron(name);
      if (!current()) return;
      this.job = job;
      this.schedule.value = job ? job.schedule : '';
      this.tz.value = job ? job.tz : '';
      this.active.checked = !job || job.state === 'active';
      this.msg.textContent = job ? 'runs: ' + job.run_count + ', errors: ' + job.error_count : 'no schedule';
      if (job) {
        const hist = await this.client.cronHistory(name);
        if (!current()) return;
        replace(this.history, (hist || []).slice(0, 20).map((r) => h('li', null,
          r.started_at + ' ' + r.type + ' ' + (r.statusCode || ''))));
      }
      this.preview();
    } catch (e) { if (current()) this.msg.textContent = 'cannot load the schedule: ' + e.message; }
  }

  // preview shows the next five runs of the schedule being typed
  // (debounced). It is bound to the webtask open when it was asked for: a
  // preview of a webtask no longer open (switched, renamed, deleted: the
  // name may be '' in between) is never sent or shown.
  preview() {
    clearTimeout(this.timer);
    const name = this.getName();
    const seq = (this.seq = (this.seq || 0) + 1);
    if (!name) { replace(this.next); return; }
    this.timer = setTimeout(async () => {
      const s = this.schedule.value.trim();
      if (!s || this.getName() !== name) { replace(this.next); return; }
      try {
        const p = await this.client.cronPreview(name, s, this.tz.value.trim() || 'UTC');
        if (seq === this.seq) replace(this.next, (p.next || []).map((t) => h('li', null, t)));
      } catch (e) { if (seq === this.seq) replace(this.next, h('li.error', null, e.message)); }
    }, 250);
  }

  async save() {
    try {
      const state = this.active.checked ? 'active' : 'inactive';
      await this.client.putCron(this.getName(), { schedule: this.schedule.value.trim(), tz: this.tz.value.trim() || 'UTC', state });
      this.msg.textContent = 'saved';
      await this.load();
    } catch (e) { this.msg.textContent = 'not saved: ' + e.message; }
  }

  async remove() {
    try { await this.client.deleteCron(this.getName()); this.msg.textContent = 'removed'; await this.load(); } catch (e) {
      this.msg.textContent = 'not removed: ' + e.message;
    }
  }
}
