package editor_test

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/webtaskd/webtaskd/daemon/daemontest"
	"github.com/webtaskd/webtaskd/store/modules/modulestest"
)

const container = "ed"

// fixture is one daemon shared by the scenarios, a tenant token of
// container "ed", and two host pages on other origins (the first one is in
// the daemon's --editor-frame-ancestors allow-list).
type fixture struct {
	env            *daemontest.Env
	logs           *daemontest.LogBuffer
	tenant         string
	allowed, other *httptest.Server
	hostPage       *template.Template
}

func TestEditorInBrowser(t *testing.T) {
	daemontest.RequireRoot(t)
	chromiumPath(t)
	f := &fixture{logs: &daemontest.LogBuffer{}}
	f.hostPage = template.Must(template.New("host").Parse(hostHTML))
	var base string
	host := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = f.hostPage.Execute(w, map[string]string{
			"Base": base, "Container": container, "Token": f.tenant, "Name": r.URL.Query().Get("name"),
		})
	}
	f.allowed = httptest.NewServer(http.HandlerFunc(host))
	t.Cleanup(f.allowed.Close)
	f.other = httptest.NewServer(http.HandlerFunc(host))
	t.Cleanup(f.other.Close)

	// The dependency scenario's npm package, from a registry on loopback
	// (the host npm's configuration, as an admin would set it).
	npmPath(t)
	reg := modulestest.NewRegistry(t, depPackage)
	t.Setenv("npm_config_registry", reg.URL())

	cfg := daemontest.Config(t)
	cfg.API.EditorFrameAncestors = []string{f.allowed.URL}
	f.env = daemontest.StartLogged(t, cfg, f.logs)
	base = f.env.Base
	r := f.env.Call("POST", "/api/tokens/issue", f.env.Master, map[string]any{"ten": container})
	daemontest.MustStatus(t, r, 200, "issue tenant token")
	f.tenant = strings.TrimSpace(string(r.Body))

	t.Run("OpenWithToken", f.openWithToken)
	t.Run("TokenPrompt", f.tokenPrompt)
	t.Run("SaveAndRunWithKeyboard", f.saveAndRun)
	t.Run("SecretAndMetaUsedByRun", f.secretAndMeta)
	t.Run("StorageConflict", f.storageConflict)
	t.Run("Embedded", f.embedded)
	t.Run("MarkupIsText", f.markupIsText)
	t.Run("CompletionLinterKeysTheme", f.editorFeatures)
	t.Run("CreateScheduleRenameDelete", f.manageWebtasks)

	if strings.Contains(string(f.logs.Bytes()), f.tenant) {
		t.Error("the daemon's log holds the editor's token")
	}
}

// api is the daemon's HTTP API for subtest t (tenant token).
func (f *fixture) api(t *testing.T) *daemontest.Env {
	return daemontest.Attach(t, f.env.Cfg, f.env.Base, f.env.Master)
}

func (f *fixture) putWebtask(t *testing.T, name, code string, secrets, meta map[string]string) {
	t.Helper()
	body := map[string]any{"code": code, "secrets": secrets, "meta": meta}
	daemontest.MustStatus(t, f.api(t).Call("PUT", "/api/webtask/"+container+"/"+name, f.tenant, body), 200, "PUT webtask")
}

func (f *fixture) storedCode(t *testing.T, name string) string {
	t.Helper()
	r := f.api(t).Call("GET", "/api/webtask/"+container+"/"+name+"?fetch_code=1", f.tenant, nil)
	daemontest.MustStatus(t, r, 200, "GET webtask")
	var w struct {
		Code string `json:"code"`
	}
	r.JSON(t, &w)
	return w.Code
}

// open navigates to the editor as `wt edit NAME` would and waits for name's code.
func (f *fixture) open(t *testing.T, b *browser, name, codeSnippet string) {
	t.Helper()
	b.do("open the editor", chromedp.Navigate(f.env.Base+"/edit/"+container+"#/"+name+"/"+f.tenant))
	b.waitFor("the code", fmt.Sprintf(`document.querySelector('.cm-content') && document.querySelector('.cm-content').textContent.includes(%q)`, codeSnippet))
}

// typeCode replaces the editor's code by typing it (select all, then keys).
func typeCode(b *browser, code string) {
	b.do("type code",
		chromedp.Click(chromedp.CSS(".cm-content")),
		chromedp.KeyEvent("a", chromedp.KeyModifiers(kb.ModifierCtrl)),
		chromedp.KeyEvent(kb.Delete),
		chromedp.KeyEvent(code))
}

func ctrl(key string) chromedp.Action[chromedp.Void] {
	return chromedp.KeyEvent(key, chromedp.KeyModifiers(kb.ModifierCtrl))
}

func (f *fixture) openWithToken(t *testing.T) {
	const secret = "s3cr3t-value-9f2"
	// Issued the wt-cli way, with a secret (ectx) and a param (pctx).
	daemontest.MustStatus(t, f.api(t).Call("POST", "/api/tokens/issue", f.tenant, map[string]any{
		"ten": container, "jtn": "hello", "code": "module.exports = function (ctx, cb) { cb(null, { hello: 'world' }); };\n",
		"ectx": map[string]string{"API_KEY": secret}, "pctx": map[string]string{"REGION": "eu-west"},
	}), 200, "issue webtask hello")
	b := newBrowser(t, 90*time.Second)
	f.open(t, b, "hello", "hello: 'world'")
	if loc := b.str(`location.href`); strings.Contains(loc, f.tenant) || strings.Contains(loc, "eyJ") {
		t.Errorf("the token is still in the address bar: %s", loc)
	}
	if strings.Contains(b.str(`history.state === null ? location.hash : JSON.stringify(history.state)`), f.tenant) {
		t.Error("the token is in the history entry")
	}
	b.do("open secrets", chromedp.Click(chromedp.CSS(`.tab[data-tab="Secrets"]`)))
	b.waitFor("the secret row", `document.querySelector('.kv td.value[data-key="API_KEY"]')`)
	if v := b.text(`.kv td.value[data-key="API_KEY"]`); v != "••••••••" {
		t.Errorf("secret shown as %q, want it masked", v)
	}
	if strings.Contains(b.str(`document.body.innerText`), secret) {
		t.Error("the secret value is on the page before it is revealed")
	}
	b.do("reveal", chromedp.Click(chromedp.CSS(`.kv tr:has(td.value[data-key="API_KEY"]) button`)))
	b.waitFor("the revealed secret", fmt.Sprintf(`document.querySelector('.kv td.value[data-key="API_KEY"]').textContent === %q`, secret))
	b.do("params", chromedp.Click(chromedp.CSS(`.tab[data-tab="Params"]`)))
	if got := b.text(`section.kv[aria-label="Params"] td.value[data-key="REGION"]`); got != "eu-west" {
		t.Errorf("param REGION shown as %q", got)
	}
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
	// No token in any URL: neither the editor's nor the webtask's (JWTs start with eyJ).
	if u := b.requestsWith("eyJ"); len(u) > 0 {
		t.Errorf("requests with a token in their URL: %q", u)
	}
}

// tokenPrompt: without a token in the address (a reload keeps only
// #/{name}), the page asks for one and opens that webtask.
func (f *fixture) tokenPrompt(t *testing.T) {
	b := newBrowser(t, 90*time.Second)
	b.do("open without a token", chromedp.Navigate(f.env.Base+"/edit/"+container+"#/hello"))
	b.waitFor("the prompt", `document.querySelector('.token-input')`)
	b.do("paste the token", chromedp.Click(chromedp.CSS(".token-input")), chromedp.KeyEvent(f.tenant), chromedp.KeyEvent(kb.Enter))
	b.waitFor("hello's code", `document.querySelector('.cm-content') && document.querySelector('.cm-content').textContent.includes("hello: 'world'")`)
	if loc := b.str(`location.href`); strings.Contains(loc, "eyJ") || !strings.HasSuffix(loc, "#/hello") {
		t.Errorf("address after the prompt: %s", loc)
	}
	if u := b.requestsWith("eyJ"); len(u) > 0 {
		t.Errorf("requests with a token in their URL: %q", u)
	}
}

func (f *fixture) saveAndRun(t *testing.T) {
	f.putWebtask(t, "runme", "module.exports = function (ctx, cb) { cb(null, { v: 1 }); };\n", nil, nil)
	b := newBrowser(t, 90*time.Second)
	f.open(t, b, "runme", "v: 1")
	b.waitFor("the log stream", `document.querySelector('.log-state').textContent === 'connected'`)
	code := `module.exports = function (ctx, cb) { console.log('marker-from-run'); cb(null, { v: 2 }); };`
	typeCode(b, code)
	b.waitFor("the dirty marker", `!document.querySelector('.dirty').hidden`)
	b.do("save", ctrl("s"))
	b.waitFor("saved", `document.querySelector('.dirty').hidden`)
	if got := f.storedCode(t, "runme"); got != code {
		t.Fatalf("stored code %q, want %q", got, code)
	}
	b.do("save and run", ctrl("\r"))
	b.waitFor("the result", `document.querySelector('.run-status') && document.querySelector('.run-status').dataset.status === '200'`)
	if body := b.text(".run-body-out"); !strings.Contains(body, `"v": 2`) {
		t.Errorf("response body %q", body)
	}
	b.waitFor("the console.log line in the log pane", `[...document.querySelectorAll('.log-msg')].some(e => e.textContent.includes('marker-from-run'))`)
	if docsScreenshots() {
		b.screenshot("docs/editor")
	}
	b.do("copy as curl", chromedp.Click(chromedp.CSS(".runner .buttons button:nth-child(2)")))
	if got, want := b.str(`document.querySelector('.run-curl').value`), "curl -sS -X GET '"+f.env.Base+"/api/run/ed/runme'"; got != want {
		t.Errorf("curl command %q, want %q", got, want)
	}
	if n := b.num(`document.querySelectorAll('.run-history li').length`); n != 1 {
		t.Errorf("%v runs in the history, want 1", n)
	}
	b.do("filter the logs", chromedp.Click(chromedp.CSS(".log-filter")), chromedp.KeyEvent("no-such-text"))
	b.waitFor("the line filtered out", `document.querySelectorAll('.log-line').length === 0`)
	b.do("clear the filter, then the logs", chromedp.Click(chromedp.CSS(".log-filter")), ctrl("a"), chromedp.KeyEvent(kb.Backspace))
	b.waitFor("the line back", `[...document.querySelectorAll('.log-msg')].some(e => e.textContent.includes('marker-from-run'))`)
	b.do("clear", chromedp.Click(chromedp.CSS(".log-bar button")))
	b.waitFor("the logs cleared", `document.querySelectorAll('.log-line').length === 0`)
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}

// addKV adds name=value in the pane of tab (Secrets or Meta) with the mouse and keyboard.
func addKV(b *browser, tab, name, value string) {
	b.do("add "+name+" in "+tab,
		chromedp.Click(chromedp.CSS(`.tab[data-tab="`+tab+`"]`)),
		chromedp.Click(chromedp.CSS(`section.kv[aria-label="`+tab+`"] .kv-new-name`)),
		chromedp.KeyEvent(name),
		chromedp.Click(chromedp.CSS(`section.kv[aria-label="`+tab+`"] .kv-new-value`)),
		chromedp.KeyEvent(value),
		chromedp.Click(chromedp.CSS(`section.kv[aria-label="`+tab+`"] .kv-add button`)))
	b.waitFor(name+" listed", fmt.Sprintf(`document.querySelector('section.kv[aria-label=%q] td.value[data-key=%q]')`, tab, name))
}

// depPackage is the npm package the dependency scenario adds.
var depPackage = modulestest.Package{Name: "wtd-editor-dep", Version: "1.0.0",
	Files: map[string]string{"index.js": `module.exports = "from-the-dependency";`}}

// secretAndMeta: add a secret, a meta key and a dependency (its
// provisioning state shown until it is available); the run uses them.
func (f *fixture) secretAndMeta(t *testing.T) {
	f.putWebtask(t, "uses", "module.exports = function (ctx, cb) { cb(null, { s: ctx.secrets.TOKEN2, m: ctx.meta.color, "+
		"d: require('"+depPackage.Name+"') }); };\n", nil, nil)
	b := newBrowser(t, 5*time.Minute)
	f.open(t, b, "uses", "ctx.secrets.TOKEN2")
	addKV(b, "Secrets", "TOKEN2", "tv-42")
	addKV(b, "Meta", "color", "teal")

	// Every state the dependency's row shows, in order (a person sees
	// "queued" before "available"; npm may be quick).
	b.do("dependencies tab", chromedp.Click(chromedp.CSS(`.tab[data-tab="Dependencies"]`)))
	b.str(`(() => {
		window.__depStates = [];
		const pane = document.querySelector('section.deps');
		const note = () => {
			const s = pane.querySelector('tr[data-dep="` + depPackage.Name + `"] .dep-state');
			if (s && window.__depStates[window.__depStates.length - 1] !== s.dataset.state) window.__depStates.push(s.dataset.state);
		};
		new MutationObserver(note).observe(pane, { childList: true, subtree: true, attributes: true });
		return 'observing';
	})()`)
	b.do("add the dependency", chromedp.Click(chromedp.CSS(".dep-spec")), chromedp.KeyEvent(depPackage.Name+"@"+depPackage.Version), chromedp.KeyEvent(kb.Enter))
	b.waitForLong("the dependency available", 3*time.Minute,
		`document.querySelector('tr[data-dep="`+depPackage.Name+`"] .dep-state[data-state="available"]') || document.querySelector('.dep-state[data-state="failed"]')`)
	if st := b.str(`window.__depStates.join(' ')`); !strings.HasSuffix(st, "queued available") {
		t.Fatalf("the dependency's states shown: %q (npm: %q), want queued until available", st, b.text(".dep-error"))
	}
	if docsScreenshots() {
		b.screenshot("docs/editor-dependencies")
	}
	b.do("meta tab", chromedp.Click(chromedp.CSS(`.tab[data-tab="Meta"]`)))
	if got, want := b.text(`section.kv[aria-label="Meta"] td.value[data-key="wt-node-dependencies"]`), `{"`+depPackage.Name+`":"1.0.0"}`; got != want {
		t.Errorf("meta wt-node-dependencies shown as %q, want %q", got, want)
	}

	// Ctrl-Enter from another pane saves, runs and shows the runner.
	b.do("save and run", chromedp.Click(chromedp.CSS(".cm-content")), ctrl("\r"))
	b.waitFor("the result in the runner", `document.querySelector('.run-status') && document.querySelector('.run-status').dataset.status === '200' && document.querySelector('.run-status').offsetParent`)
	body := b.text(".run-body-out")
	if !strings.Contains(body, `"s": "tv-42"`) || !strings.Contains(body, `"m": "teal"`) || !strings.Contains(body, `"d": "from-the-dependency"`) {
		t.Errorf("run did not use the new secret, meta and dependency: %s", body)
	}
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}

func (f *fixture) storageConflict(t *testing.T) {
	f.putWebtask(t, "store", "module.exports = function (ctx, cb) { cb(null, {}); };\n", nil, nil)
	api := f.api(t)
	daemontest.MustStatus(t, api.Call("PUT", "/api/webtask/"+container+"/store/data", f.tenant, map[string]any{"data": `{"n":1}`}), 200, "seed storage")
	b := newBrowser(t, 90*time.Second)
	f.open(t, b, "store", "cb(null")
	b.do("storage tab", chromedp.Click(chromedp.CSS(`.tab[data-tab="Storage"]`)))
	b.waitFor("the stored data", `document.querySelector('.storage-data').value === '{"n":1}'`)
	mine := `{"n":1,"mine":true}`
	b.do("edit storage", chromedp.Click(chromedp.CSS(".storage-data")),
		chromedp.KeyEvent("a", chromedp.KeyModifiers(kb.ModifierCtrl)), chromedp.KeyEvent(mine))
	// Someone else writes in between.
	daemontest.MustStatus(t, api.Call("PUT", "/api/webtask/"+container+"/store/data", f.tenant, map[string]any{"data": `{"n":2}`}), 200, "conflicting write")
	b.do("save storage", chromedp.Click(chromedp.CSS(".storage-save")))
	b.waitFor("the conflict", `!document.querySelector('.storage-conflict').hidden`)
	if got := b.text(".conflict-theirs"); got != `{"n":2}` {
		t.Errorf("stored version shown as %q", got)
	}
	if got := b.text(".conflict-mine"); got != mine {
		t.Errorf("my version shown as %q", got)
	}
	if got := b.str(`document.querySelector('.storage-data').value`); got != mine {
		t.Errorf("my text was lost: %q", got)
	}
	b.do("keep mine", chromedp.Click(chromedp.CSS(".conflict-keep-mine")))
	b.waitFor("saved", `document.querySelector('.storage-msg').textContent.startsWith('saved')`)
	var d struct {
		Data string `json:"data"`
	}
	api.Call("GET", "/api/webtask/"+container+"/store/data", f.tenant, nil).JSON(t, &d)
	if d.Data != mine {
		t.Errorf("stored %q after keeping mine", d.Data)
	}
}

func (f *fixture) embedded(t *testing.T) {
	f.putWebtask(t, "embedded", "module.exports = function (ctx, cb) { cb(null, { embedded: true }); };\n", nil, nil)
	b := newBrowser(t, 90*time.Second)
	b.do("open the host page", chromedp.Navigate(f.allowed.URL+"/?name=embedded"))
	b.waitFor("the embedded editor with the code", `window.editor && window.editor.getCode().includes('embedded: true')`)
	if src := b.str(`document.querySelector('iframe').src`); strings.Contains(src, f.tenant) {
		t.Errorf("the token is in the iframe URL %s", src)
	}
	// Click into the code in the iframe, type at the end, Ctrl-S.
	x, y := b.num(`(() => { const r = document.querySelector('iframe').getBoundingClientRect(); return r.left + r.width / 2; })()`),
		b.num(`(() => { const r = document.querySelector('iframe').getBoundingClientRect(); return r.top + 80; })()`)
	b.do("edit in the iframe", chromedp.MouseClickXY(x, y), ctrl(kb.End), chromedp.KeyEvent("\r// edited in the embed"), ctrl("s"))
	b.waitFor("didSaveWebtask", `window.events.includes('didSaveWebtask')`)
	if got := f.storedCode(t, "embedded"); !strings.Contains(got, "// edited in the embed") {
		t.Errorf("stored code after the embedded save: %q", got)
	}
	if docsScreenshots() {
		b.screenshot("docs/editor-embedded")
	}
	// The editor object: run() resolves with the response, didRun fires;
	// setCode makes it dirty.
	status := b.num(`window.editor.run({ method: 'GET', path: '/x' }).then(r => r.status)`)
	if status != 200 {
		t.Errorf("editor.run() status %v", status)
	}
	b.waitFor("didRun", `window.events.includes('didRun')`)
	if b.str(`String(window.editor.isDirty())`) != "false" {
		t.Error("isDirty() after a save and a run")
	}
	b.num(`window.editor.setCode('module.exports = (ctx, cb) => cb(null, 3);').then(() => 1)`)
	if b.str(`String(window.editor.isDirty())`) != "true" || !strings.Contains(b.str(`window.editor.getCode()`), "cb(null, 3)") {
		t.Error("setCode() did not make the editor dirty with the new code")
	}

	// An origin outside the allow-list cannot frame it.
	b2 := newBrowser(t, 60*time.Second)
	b2.do("open the other host page", chromedp.Navigate(f.other.URL+"/?name=embedded"))
	b2.waitForMessage("the frame-ancestors refusal", "frame-ancestors")
	if got := b2.str(`window.events.join(',')`); strings.Contains(got, "created") {
		t.Errorf("the editor loaded in a page outside the allow-list: %s", got)
	}
}

func (f *fixture) markupIsText(t *testing.T) {
	const payload = `<img src=x onerror="window.__pwned=1">`
	code := "module.exports = function (ctx, req, res) { console.log(" + jsString(payload) + "); " +
		"res.writeHead(200, { 'content-type': 'text/html' }); res.end(" + jsString(payload) + "); };\n"
	f.putWebtask(t, "x=onerror", code, map[string]string{"K": payload}, map[string]string{"note": payload})
	api := f.api(t)
	daemontest.MustStatus(t, api.Call("PUT", "/api/webtask/"+container+"/x=onerror/data", f.tenant, map[string]any{"data": jsString(payload)}), 200, "storage")
	b := newBrowser(t, 90*time.Second)
	f.open(t, b, "x=onerror", "res.writeHead")
	b.waitFor("the log stream", `document.querySelector('.log-state').textContent === 'connected'`)
	b.do("run", chromedp.Click(chromedp.CSS(".run-button")))
	b.waitFor("the result", `document.querySelector('.run-status') && document.querySelector('.run-status').dataset.status === '200'`)
	b.waitFor("the log line", `[...document.querySelectorAll('.log-msg')].some(e => e.textContent.includes('onerror'))`)
	b.do("meta and storage tabs", chromedp.Click(chromedp.CSS(`.tab[data-tab="Meta"]`)), chromedp.Click(chromedp.CSS(`.tab[data-tab="Storage"]`)))
	if got := b.str(`document.querySelector('.storage-data').value`); got != jsString(payload) {
		t.Errorf("storage shown as %q", got)
	}
	if got := b.text(".run-body-out"); got != payload {
		t.Errorf("response shown as %q, want the markup as text", got)
	}
	// The sandboxed preview: no scripts, no same origin.
	b.do("preview the HTML", chromedp.Click(chromedp.CSS(`.tab[data-tab="Runner"]`)), chromedp.Click(chromedp.CSS(".run-result button")))
	b.waitFor("the preview frame", `document.querySelector('iframe.html-preview')`)
	if got := b.str(`document.querySelector('iframe.html-preview').getAttribute('sandbox')`); got != "" {
		t.Errorf("preview sandbox=%q, want no permissions", got)
	}
	if n := b.num(`document.querySelectorAll('img').length`); n != 0 {
		t.Errorf("%v img elements on the page: markup was rendered", n)
	}
	if got := b.str(`String(window.__pwned)`); got != "undefined" {
		t.Errorf("the payload ran: window.__pwned = %s", got)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

const hostHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>platform page</title></head>
<body>
<h1>A platform's settings page</h1>
<div id="box" style="width: 1200px; height: 600px"></div>
<pre id="events"></pre>
<script src="{{.Base}}/editor/embed.js"></script>
<script>
window.events = [];
ExtendEditor.create(document.getElementById('box'), {
  hostUrl: {{.Base}}, webtaskContainer: {{.Container}}, token: {{.Token}}, webtaskName: {{.Name}},
}).then(function (ed) {
  window.editor = ed;
  window.events.push('created');
  ['didLoadWebtask', 'didSaveWebtask', 'didRun', 'error'].forEach(function (n) {
    ed.on(n, function () { window.events.push(n); document.getElementById('events').textContent += n + '\n'; });
  });
}).catch(function (e) { window.events.push('failed: ' + e.message); });
</script>
</body></html>
`
