// The editor's only way to the daemon: the public HTTP API, with the
// token in the Authorization header (never in a URL, never in a cookie).

export class ApiError extends Error {
  constructor(status, message, reqId, body) {
    super(message);
    this.status = status;
    this.reqId = reqId;
    this.body = body;
  }
}

const enc = encodeURIComponent;

export class Client {
  constructor(container, token) {
    this.container = container;
    this.token = token; // kept in this tab's memory only
  }

  base() { return '/api/webtask/' + enc(this.container); }

  async request(method, path, { body, query, raw } = {}) {
    const qs = query ? '?' + new URLSearchParams(query).toString() : '';
    const init = {
      method,
      headers: { Authorization: 'Bearer ' + this.token },
      credentials: 'omit',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path + qs, init);
    if (raw) return res;
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    if (!res.ok) {
      const msg = (json && json.message) || text || res.statusText;
      throw new ApiError(res.status, msg, (json && json.req_id) || res.headers.get('x-wt-request-id'), json);
    }
    return json;
  }

  list() { return this.request('GET', this.base(), { query: { limit: '100' } }); }

  // get returns the webtask with its code, and its secrets when this token
  // may decrypt them (secretsVisible false otherwise).
  async get(name) {
    const path = this.base() + '/' + enc(name);
    try {
      const w = await this.request('GET', path, { query: { fetch_code: '1', decrypt: '1' } });
      w.secretsVisible = true;
      return w;
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 403) throw e;
    }
    const w = await this.request('GET', path, { query: { fetch_code: '1' } });
    w.secretsVisible = false;
    return w;
  }

  // put creates or replaces a webtask; secrets undefined keeps the stored ones.
  put(name, { code, secrets, meta }) {
    const body = { code, meta: meta || {} };
    if (secrets !== undefined) body.secrets = secrets;
    return this.request('PUT', this.base() + '/' + enc(name), { body });
  }

  remove(name) { return this.request('DELETE', this.base() + '/' + enc(name)); }

  getData(name) { return this.request('GET', this.base() + '/' + enc(name) + '/data'); }
  putData(name, data, etag) {
    return this.request('PUT', this.base() + '/' + enc(name) + '/data', { body: { data, etag } });
  }

  cronPath(name) { return '/api/cron/' + enc(this.container) + '/' + enc(name); }
  // getCron is name's job or null (from the container's list: a missing
  // job is not an error to show in the console).
  async getCron(name) {
    for (let offset = 0; ; offset += 100) {
      const jobs = (await this.request('GET', '/api/cron/' + enc(this.container), { query: { offset: String(offset), limit: '100' } })) || [];
      const job = jobs.find((j) => j.name === name);
      if (job || jobs.length < 100) return job || null;
    }
  }
  putCron(name, job) { return this.request('PUT', this.cronPath(name), { body: job }); }
  deleteCron(name) { return this.request('DELETE', this.cronPath(name)); }
  cronState(name, state) { return this.request('PUT', this.cronPath(name) + '/state', { body: { state } }); }
  cronHistory(name) { return this.request('GET', this.cronPath(name) + '/history'); }
  cronPreview(name, schedule, tz) {
    return this.request('GET', this.cronPath(name) + '/next', { query: { schedule, tz, count: '5' } });
  }

  // checkSyntax answers the syntax errors of code under meta, from the
  // daemon's transpiler: [{line, column, message}].
  async checkSyntax(code, meta) {
    const r = await this.request('POST', '/api/syntax/' + enc(this.container), { body: { code, meta } });
    return r.errors;
  }

  // requestModules asks the daemon to provision modules [{name, version}]
  // and answers their states at once ([{name, version, state, error}]).
  requestModules(modules) { return this.request('POST', '/api/env/node/modules', { body: { modules } }); }

  // moduleVersions lists the known versions of an npm package with their
  // states (scoped names are encoded as one path segment).
  moduleVersions(name) { return this.request('GET', '/api/env/node/modules/' + enc(name)); }

  // logs streams the container's log records (SSE over fetch, so that the
  // token travels in a header) to onRecord until signal aborts.
  async logs(onRecord, signal) {
    const res = await fetch('/api/logs/tenant/' + enc(this.container) + '?tail=0', {
      headers: { Authorization: 'Bearer ' + this.token, Accept: 'text/event-stream' },
      credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer', signal,
    });
    if (!res.ok) throw new ApiError(res.status, 'log stream: ' + res.status, res.headers.get('x-wt-request-id'));
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let name = 'message', data = '';
        for (const line of event.split('\n')) {
          if (line.startsWith('event:')) name = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trimStart();
        }
        if (name !== 'message' || !data) continue;
        try { onRecord(JSON.parse(data)); } catch { /* a malformed record is skipped */ }
      }
    }
  }
}

// runWebtask calls a named webtask the way any client would: no
// credential (its stored token authorizes it).
export async function runWebtask(container, name, req) {
  let url = '/api/run/' + enc(container) + '/' + enc(name);
  const sub = (req.path || '').replace(/^\/+/, '');
  if (sub) url += '/' + sub;
  if (req.query) url += '?' + req.query.replace(/^\?/, '');
  const headers = {};
  for (const [k, v] of req.headers || []) if (k) headers[k] = v;
  const init = { method: req.method || 'GET', headers, credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer' };
  if (req.body && init.method !== 'GET' && init.method !== 'HEAD') init.body = req.body;
  const t0 = performance.now();
  const res = await fetch(url, init);
  const body = await res.text();
  const ms = Math.round(performance.now() - t0);
  const hdrs = [];
  res.headers.forEach((v, k) => hdrs.push([k, v]));
  return { status: res.status, statusText: res.statusText, headers: hdrs, body, ms, url };
}
