// Real-time logs of the open webtask: the daemon's SSE stream read with
// fetch (token in a header), filtered by the record's webtask field.
import { h, replace } from './dom.js';

const MAX_LINES = 2000;

export class LogsPane {
  constructor(client, getName) {
    this.client = client;
    this.getName = getName;
    this.records = [];
    this.filter = h('input.log-filter', { type: 'search', placeholder: 'filter', 'aria-label': 'filter logs', oninput: () => this.render() });
    this.all = h('input', { type: 'checkbox', 'aria-label': 'all webtasks', onchange: () => this.render() });
    this.autoscroll = h('input', { type: 'checkbox', checked: true, 'aria-label': 'autoscroll' });
    this.state = h('span.log-state.muted', null, 'connecting…');
    this.list = h('div.log-lines', { role: 'log', 'aria-label': 'log lines' });
    this.el = h('section.pane.logs', { 'aria-label': 'logs' },
      h('div.log-bar', null, h('h3', null, 'Logs'), this.filter,
        h('label', null, this.all, ' all webtasks'), h('label', null, this.autoscroll, ' autoscroll'),
        h('button', { type: 'button', onclick: () => { this.records = []; this.render(); } }, 'Clear'), this.state),
      this.list);
    this.connected = new Promise((resolve) => { this.resolveConnected = resolve; });
  }

  // start keeps a stream open until stop(), reconnecting with a bounded backoff.
  start() {
    this.abort = new AbortController();
    const signal = this.abort.signal;
    let delay = 500;
    const loop = async () => {
      while (!signal.aborted) {
        try {
          this.state.textContent = 'connected';
          this.resolveConnected();
          await this.client.logs((rec) => this.add(rec), signal);
          delay = 500;
        } catch (e) {
          if (signal.aborted) return;
          this.state.textContent = 'disconnected: ' + e.message;
        }
        if (signal.aborted) return;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 10000);
      }
    };
    loop();
  }

  stop() { this.abort?.abort(); }

  matches(rec) {
    if (!this.all.checked && rec.webtask !== this.getName()) return false;
    const f = this.filter.value.toLowerCase();
    return !f || String(rec.msg).toLowerCase().includes(f);
  }

  line(rec) {
    const time = (rec.time || '').replace(/^.*T/, '').replace(/Z$/, '');
    return h('div.log-line', { dataset: { stream: rec.stream || '' } },
      h('span.log-time', null, time), ' ',
      this.all.checked ? h('span.log-webtask', null, rec.webtask || '-') : null, this.all.checked ? ' ' : null,
      h('span.log-msg', null, rec.msg));
  }

  add(rec) {
    this.records.push(rec);
    if (this.records.length > MAX_LINES) this.records.splice(0, this.records.length - MAX_LINES);
    if (this.matches(rec)) {
      this.list.append(this.line(rec));
      if (this.list.childElementCount > MAX_LINES) this.list.firstChild.remove();
      if (this.autoscroll.checked) this.list.scrollTop = this.list.scrollHeight;
    }
  }

  render() {
    replace(this.list, this.records.filter((r) => this.matches(r)).map((r) => this.line(r)));
    if (this.autoscroll.checked) this.list.scrollTop = this.list.scrollHeight;
  }
}
