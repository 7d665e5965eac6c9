// The editor's side of embedding: the embedding page (window.parent) sends
// the token and options by postMessage; after that first message, only
// messages from that window and that exact origin are accepted, and every
// message goes to that origin only.
const FROM_HOST = 'webtaskd-embed';
const TO_HOST = 'webtaskd-editor';

export class Bridge {
  constructor(parent) {
    this.parent = parent;
    this.origin = null;
  }

  waitInit() {
    return new Promise((resolve) => {
      const onMsg = (ev) => {
        if (ev.source !== this.parent || !ev.data || ev.data.source !== FROM_HOST || ev.data.kind !== 'init') return;
        if (typeof ev.data.token !== 'string' || !ev.origin || ev.origin === 'null') return;
        window.removeEventListener('message', onMsg);
        this.origin = ev.origin;
        resolve({ token: ev.data.token, options: ev.data.options });
      };
      window.addEventListener('message', onMsg);
      // "ready" carries nothing secret; the host checks it comes from its iframe.
      this.parent.postMessage({ source: TO_HOST, kind: 'ready' }, '*');
    });
  }

  send(msg) {
    if (this.origin) this.parent.postMessage({ source: TO_HOST, ...msg }, this.origin);
  }

  event(name, data) { this.send({ kind: 'event', name, data: data === undefined ? null : JSON.parse(JSON.stringify(data)) }); }
  state(s) { this.send({ kind: 'state', ...s }); }

  serve(app) {
    window.addEventListener('message', async (ev) => {
      if (ev.source !== this.parent || ev.origin !== this.origin || !ev.data || ev.data.source !== FROM_HOST || ev.data.kind !== 'call') return;
      const { id, method, args } = ev.data;
      try {
        let value = null;
        switch (method) {
          case 'save': value = await app.save(); break;
          case 'run': {
            const res = await app.runner.run(args && args[0]);
            value = res && { status: res.status, headers: res.headers, body: res.body, ms: res.ms };
            break;
          }
          case 'setCode': app.code.setCode(String(args[0])); break;
          case 'open': await app.open(String(args[0])); break;
          default: throw new Error('unknown method ' + method);
        }
        this.send({ kind: 'result', id, value });
      } catch (e) {
        this.send({ kind: 'result', id, error: e.message || String(e) });
      }
    });
  }
}
