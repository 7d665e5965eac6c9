// The runner: builds a request, calls the webtask, shows the response as
// text (an HTML response as source, or in a sandboxed frame on demand),
// keeps a run history and offers "copy as curl".
import { h, replace } from './dom.js';
import { runWebtask } from './api.js';

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

function parseHeaders(text) {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const i = l.indexOf(':');
    return i < 0 ? [l, ''] : [l.slice(0, i).trim(), l.slice(i + 1).trim()];
  });
}

const sq = (s) => "'" + String(s).replace(/'/g, "'\\''") + "'";

// curlFor is the request as a shell command (no credential: a named
// webtask's own token authorizes its runs).
export function curlFor(origin, container, name, req) {
  let url = origin + '/api/run/' + encodeURIComponent(container) + '/' + encodeURIComponent(name);
  const sub = (req.path || '').replace(/^\/+/, '');
  if (sub) url += '/' + sub;
  if (req.query) url += '?' + req.query.replace(/^\?/, '');
  const parts = ['curl', '-sS', '-X', req.method, sq(url)];
  for (const [k, v] of req.headers) parts.push('-H', sq(k + ': ' + v));
  if (req.body && req.method !== 'GET') parts.push('--data-binary', sq(req.body));
  return parts.join(' ');
}

export class Runner {
  constructor({ container, getName, beforeRun, onResult }) {
    this.container = container;
    this.getName = getName;
    this.beforeRun = beforeRun;
    this.onResult = onResult;
    this.history = [];
    this.method = h('select.run-method', { 'aria-label': 'method' }, METHODS.map((m) => h('option', { value: m }, m)));
    this.path = h('input.run-path', { placeholder: '/sub/path', 'aria-label': 'sub-path' });
    this.query = h('input.run-query', { placeholder: 'a=1&b=2', 'aria-label': 'query' });
    this.headers = h('textarea.run-headers', { rows: 2, placeholder: 'Content-Type: application/json', 'aria-label': 'headers' });
    this.body = h('textarea.run-body', { rows: 4, placeholder: 'body', 'aria-label': 'body' });
    this.result = h('div.run-result', { 'aria-live': 'polite' });
    this.historyEl = h('ol.run-history');
    this.curlEl = h('textarea.run-curl', { rows: 3, readOnly: true, hidden: true, 'aria-label': 'curl command' });
    this.el = h('section.pane.runner', { 'aria-label': 'runner' },
      h('h3', null, 'Runner'),
      h('div.run-line', null, this.method, this.path),
      h('label', null, 'Query', this.query),
      h('label', null, 'Headers', this.headers),
      h('label', null, 'Body', this.body),
      h('div.buttons', null,
        h('button.primary.run-button', { type: 'button', onclick: () => this.run() }, 'Save & run'),
        h('button', { type: 'button', onclick: () => this.copyCurl() }, 'Copy as curl')),
      this.curlEl,
      this.result,
      h('h4', null, 'History'),
      this.historyEl);
  }

  request() {
    return {
      method: this.method.value, path: this.path.value, query: this.query.value,
      headers: parseHeaders(this.headers.value), body: this.body.value,
    };
  }

  setRequest(req) {
    if (req.method) this.method.value = String(req.method).toUpperCase();
    this.path.value = req.path || '';
    this.query.value = typeof req.query === 'string' ? req.query : new URLSearchParams(req.query || {}).toString();
    const hs = Array.isArray(req.headers) ? req.headers : Object.entries(req.headers || {});
    this.headers.value = hs.map(([k, v]) => k + ': ' + v).join('\n');
    this.body.value = typeof req.body === 'string' ? req.body : req.body ? JSON.stringify(req.body) : '';
  }

  copyCurl() {
    const cmd = curlFor(location.origin, this.container, this.getName(), this.request());
    this.curlEl.hidden = false;
    this.curlEl.value = cmd;
    this.curlEl.select();
    navigator.clipboard?.writeText(cmd).catch(() => { /* selected for manual copy */ });
  }

  // run saves (beforeRun) and calls the webtask; resolves with the response.
  async run(req) {
    if (req) this.setRequest(req);
    const r = this.request();
    replace(this.result, h('p.muted', null, 'running…'));
    if (!(await this.beforeRun())) { replace(this.result, h('p.error', null, 'not run: the save failed')); return null; }
    let res;
    try {
      res = await runWebtask(this.container, this.getName(), r);
    } catch (e) {
      replace(this.result, h('p.error', null, 'request failed: ' + e.message));
      return null;
    }
    this.show(res);
    this.history.unshift({ req: r, status: res.status, ms: res.ms, at: new Date() });
    this.history.length = Math.min(this.history.length, 20);
    this.renderHistory();
    this.onResult(r, res);
    return res;
  }

  show(res) {
    const ctype = (res.headers.find(([k]) => k === 'content-type') || [])[1] || '';
    let body = res.body;
    if (ctype.includes('json')) { try { body = JSON.stringify(JSON.parse(body), null, 2); } catch { /* as is */ } }
    const preview = h('div.preview');
    const isHTML = ctype.includes('text/html');
    replace(this.result,
      h('div.run-status', { dataset: { status: String(res.status) } },
        h('strong', null, String(res.status) + ' ' + (res.statusText || '')), ' ', h('span.muted', null, res.ms + ' ms')),
      h('details', null, h('summary', null, 'Headers (' + res.headers.length + ')'),
        h('pre.run-headers-out', null, res.headers.map(([k, v]) => k + ': ' + v).join('\n'))),
      h('pre.run-body-out', null, body),
      isHTML ? h('button', {
        type: 'button',
        // A sandboxed frame without allow-same-origin or allow-scripts: the
        // response cannot script, nor reach the editor or its token.
        onclick: () => replace(preview, h('iframe.html-preview', { sandbox: '', srcdoc: res.body, title: 'HTML preview' })),
      }, 'Preview HTML (sandboxed)') : null,
      preview);
  }

  renderHistory() {
    replace(this.historyEl, this.history.map((e) => h('li', null, h('button.link', {
      type: 'button', onclick: () => this.setRequest(e.req),
    }, e.req.method + ' /' + (e.req.path || '').replace(/^\/+/, '') + (e.req.query ? '?' + e.req.query : '') + ' → ' + e.status + ' (' + e.ms + ' ms)'))));
  }
}
