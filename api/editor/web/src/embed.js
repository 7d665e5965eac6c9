// GET /editor/embed.js: embeds the Extension Editor in a platform's page.
//
//   const editor = await WebtaskEditor.create(element, {
//     hostUrl: 'https://webtaskd.example', container: 'tenant-1', token, name: 'hello' });
//   editor.on('didSaveWebtask', (e) => …);
//
// ExtendEditor.create takes Auth0 Extend's option names (webtaskContainer,
// webtaskName, …). The editor runs in an iframe of the daemon's origin; the
// token goes to it by postMessage, addressed to that exact origin, never in
// the iframe's URL.
(function () {
  const FROM_EDITOR = 'webtaskd-editor';
  const TO_EDITOR = 'webtaskd-embed';
  const EVENTS = ['didLoad', 'didLoadWebtask', 'didSaveWebtask', 'didRun', 'error'];
  const script = document.currentScript;
  const defaultHost = script && script.src ? new URL(script.src).origin : '';

  function create(element, options) {
    return new Promise((resolve, reject) => {
      if (!element || !element.appendChild) throw new TypeError('WebtaskEditor.create: element is required');
      const o = Object.assign({}, options || {});
      const host = new URL(o.hostUrl || defaultHost);
      const origin = host.origin;
      const container = o.container || o.webtaskContainer;
      if (!container) throw new TypeError('WebtaskEditor.create: container (webtaskContainer) is required');
      if (!o.token) throw new TypeError('WebtaskEditor.create: token is required');
      const editorOptions = {};
      for (const [k, v] of Object.entries(o)) {
        if (k === 'token' || k === 'hostUrl' || typeof v === 'function') continue;
        editorOptions[k] = v;
      }
      editorOptions.webtaskName = o.name || o.webtaskName || '';

      const iframe = document.createElement('iframe');
      iframe.src = origin + host.pathname.replace(/\/+$/, '') + '/edit/' + encodeURIComponent(container) + '?embed=1';
      iframe.title = 'webtask editor';
      iframe.style.border = '0';
      iframe.style.width = '100%';
      iframe.style.height = o.height || '100%';
      iframe.setAttribute('allow', 'clipboard-write');

      const handlers = new Map(EVENTS.map((e) => [e, new Set()]));
      const pending = new Map();
      let seq = 0, code = '', dirty = false, loaded = false, destroyed = false;
      const fire = (name, data) => {
        for (const fn of handlers.get(name) || []) { try { fn(data); } catch (e) { console.error(e); } }
      };
      const post = (msg) => iframe.contentWindow.postMessage(Object.assign({ source: TO_EDITOR }, msg), origin);
      const call = (method, ...args) => new Promise((res, rej) => {
        if (destroyed) { rej(new Error('editor destroyed')); return; }
        const id = ++seq;
        pending.set(id, { res, rej });
        post({ kind: 'call', id, method, args });
      });

      const editor = {
        on(name, fn) { if (!handlers.has(name)) handlers.set(name, new Set()); handlers.get(name).add(fn); return editor; },
        off(name, fn) { handlers.get(name)?.delete(fn); return editor; },
        save: () => call('save'),
        run: (request) => call('run', request || null),
        getCode: () => code,
        setCode: (c) => { code = String(c); dirty = true; return call('setCode', code); },
        isDirty: () => dirty,
        open: (name) => call('open', name),
        destroy() {
          destroyed = true;
          window.removeEventListener('message', onMessage);
          iframe.remove();
          for (const p of pending.values()) p.rej(new Error('editor destroyed'));
          pending.clear();
        },
        iframe,
      };
      if (typeof o.onLoad === 'function') editor.on('didLoad', o.onLoad);

      const timer = setTimeout(() => { if (!loaded) reject(new Error('the editor did not load within 30 s')); }, 30000);
      function onMessage(ev) {
        // Only our iframe, from the daemon's exact origin.
        if (ev.source !== iframe.contentWindow || ev.origin !== origin) return;
        const m = ev.data;
        if (!m || m.source !== FROM_EDITOR) return;
        switch (m.kind) {
          case 'ready': post({ kind: 'init', token: o.token, options: editorOptions }); break;
          case 'state': code = m.code; dirty = m.dirty; break;
          case 'result': {
            const p = pending.get(m.id);
            if (!p) break;
            pending.delete(m.id);
            if (m.error) p.rej(new Error(m.error)); else p.res(m.value);
            break;
          }
          case 'event':
            if (m.name === 'didLoad' && !loaded) { loaded = true; clearTimeout(timer); resolve(editor); }
            if (m.name === 'error' && !loaded) { /* still loading: reported as an event too */ }
            fire(m.name, m.data);
            break;
        }
      }
      window.addEventListener('message', onMessage);
      element.appendChild(iframe);
    });
  }

  const EXTEND_NAMES = { webtaskContainer: 'container', webtaskName: 'name' };
  function createExtend(element, options) {
    const o = Object.assign({}, options || {});
    for (const [from, to] of Object.entries(EXTEND_NAMES)) if (o[from] !== undefined && o[to] === undefined) o[to] = o[from];
    return create(element, o);
  }

  window.WebtaskEditor = { create };
  window.ExtendEditor = { create: createExtend };
})();
