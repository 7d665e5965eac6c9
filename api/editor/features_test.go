package editor_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/webtaskd/webtaskd/daemon/daemontest"
)

// editorFeatures: syntax errors underlined (and not when the meta disables
// the linter), ctx.secrets. completes the real secret names, Ctrl-L shows
// the logs, the dark theme, a dirty editor asks before the page unloads.
func (f *fixture) editorFeatures(t *testing.T) {
	f.putWebtask(t, "broken", "module.exports = function (ctx, cb) { cb(null, ; };\n", nil, nil)
	f.putWebtask(t, "nolint", "module.exports = function (ctx, cb) { cb(null, ; };\n",
		map[string]string{"DB_URL": "postgres://x"}, map[string]string{"wt-editor-linter": "disabled"})
	f.putWebtask(t, "asjson", `{"a": 1}`, nil, map[string]string{"wt-compiler": "webtask-tools/json"})
	f.putWebtask(t, "asts", "export default (ctx: any, cb: any) => cb(null, 1);\n", nil, map[string]string{"wt-language": "typescript"})
	b := newBrowser(t, 90*time.Second)
	f.open(t, b, "broken", "cb(null, ;")
	// The daemon's transpiler finds the error (line 1, column 48: the ";"),
	// the editor underlines it there; Ctrl-Shift-M lists it.
	b.waitFor("the syntax error underlined", `document.querySelector('.cm-lintRange-error')`)
	if got := b.text(".cm-lintRange-error"); got != ";" {
		t.Errorf("underlined %q, want the \";\" the daemon reports", got)
	}
	b.do("open the lint panel", chromedp.Click(chromedp.CSS(".cm-content")), chord("M", "KeyM", 77, 2|8))
	b.waitFor("the lint panel", `document.querySelector('.cm-panel-lint li')`)
	if got, want := b.text(".cm-panel-lint li"), `Unexpected ";" (line 1, column 48)`; !strings.Contains(got, want) {
		t.Errorf("lint panel %q, want %q", got, want)
	}
	if docsScreenshots() {
		b.screenshot("docs/editor-syntax")
	}
	if n := len(b.requestsWith("/api/syntax/" + container)); n == 0 {
		t.Error("no request to the daemon's syntax check")
	}
	// Checked again as you type: another error, then none.
	typeCode(b, "module.exports = (ctx, cb) => cb(null, 1));")
	b.waitFor("the new error listed", `[...document.querySelectorAll('.cm-panel-lint li')].some(e => e.textContent.includes('(line 1, column 42)'))`)
	if got := b.text(".cm-lintRange-error"); got != ")" {
		t.Errorf("underlined %q, want the second \")\"", got)
	}
	typeCode(b, "module.exports = function (ctx, cb) { cb(null, 1); };")
	b.waitFor("the underline gone", `document.querySelector('.cm-content').textContent.includes('cb(null, 1)') && !document.querySelector('.cm-lintRange-error')`)
	b.do("save the fix", ctrl("s"))
	b.waitFor("saved", `document.querySelector('.dirty').hidden`)

	b.do("switch to nolint", chromedp.Click(chromedp.CSS(`.webtasks li[data-name="nolint"] button`)))
	b.waitFor("nolint opened", `document.querySelector('.webtask-name').textContent === 'nolint'`)
	if n := b.num(`document.querySelectorAll('.cm-gutter-lint, .cm-lintRange-error').length`); n != 0 {
		t.Errorf("wt-editor-linter: disabled, yet %v lint elements", n)
	}

	// The mode follows the meta: wt-compiler JSON, wt-language typescript.
	for name, want := range map[string]string{"asjson": "json", "asts": "typescript"} {
		b.do("open "+name, chromedp.Click(chromedp.CSS(`.webtasks li[data-name="`+name+`"] button`)))
		b.waitFor(name+" opened", `document.querySelector('.webtask-name').textContent === '`+name+`'`)
		if got := b.str(`document.querySelector('.code').dataset.language`); got != want {
			t.Errorf("%s opened in %q mode, want %q", name, got, want)
		}
	}
	b.do("back to nolint", chromedp.Click(chromedp.CSS(`.webtasks li[data-name="nolint"] button`)))
	b.waitFor("nolint opened", `document.querySelector('.webtask-name').textContent === 'nolint'`)

	b.do("type ctx.secrets.D", chromedp.Click(chromedp.CSS(".cm-content")), ctrl(kb.End), chromedp.KeyEvent("\rctx.secrets.D"))
	b.waitSteady("the completion of the secret name", `document.querySelector('.cm-tooltip-autocomplete li[aria-selected="true"]') && document.querySelector('.cm-tooltip-autocomplete li[aria-selected="true"]').textContent.includes('DB_URL')`, 200*time.Millisecond)
	b.do("accept it with Enter", press("Enter", 13))
	b.waitFor("ctx.secrets.DB_URL in the code", `document.querySelector('.cm-content').textContent.includes('ctx.secrets.DB_URL')`)
	if b.str(`String(document.querySelector('.dirty').hidden)`) != "false" {
		t.Error("no dirty marker after an edit")
	}
	if b.str(`(() => { const e = new Event('beforeunload', { cancelable: true }); window.dispatchEvent(e); return String(e.defaultPrevented); })()`) != "true" {
		t.Error("a dirty editor does not ask before unloading")
	}
	// Opening another webtask asks first; dismissed, nothing changes.
	if msg := b.clickAnswering(`.webtasks li[data-name="broken"] button`, false); !strings.Contains(msg, "unsaved changes of nolint") {
		t.Errorf("dialog %q", msg)
	}
	if b.text(".webtask-name") != "nolint" || !strings.Contains(b.text(".cm-content"), "ctx.secrets.DB_URL") {
		t.Error("dismissing the dialog lost the unsaved code or switched webtasks")
	}

	b.do("hide the logs", chromedp.Click(chromedp.CSS(".toggle-logs")))
	b.waitFor("logs hidden", `document.querySelector('.logs-box').hidden`)
	b.do("Ctrl-L", chromedp.Click(chromedp.CSS(".cm-content")), ctrl("l"))
	b.waitFor("logs shown by Ctrl-L", `!document.querySelector('.logs-box').hidden`)

	b.do("dark theme", chromedp.Focus(chromedp.CSS("select.theme")), chromedp.KeyEvent("d"))
	b.waitFor("the dark theme", `document.documentElement.dataset.theme === 'dark'`)
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}

// manageWebtasks: create from a template, run it (storage), schedule it
// (next runs previewed), rename it (code, secrets, storage and job move),
// delete it.
func (f *fixture) manageWebtasks(t *testing.T) {
	api := f.api(t)
	f.putWebtask(t, "seed", "module.exports = function (ctx, cb) { cb(null, 1); };\n", nil, nil)
	b := newBrowser(t, 120*time.Second)
	f.open(t, b, "seed", "cb(null, 1)")

	b.do("create from the storage template",
		chromedp.Click(chromedp.CSS(".new-name")), chromedp.KeyEvent("fresh"),
		chromedp.Focus(chromedp.CSS("select.new-template")), chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.ArrowDown),
		chromedp.Click(chromedp.CSS("form.create button")))
	b.waitFor("fresh opened", `document.querySelector('.webtask-name').textContent === 'fresh' && document.querySelector('.cm-content').textContent.includes('ctx.storage.get')`)
	if !strings.Contains(f.storedCode(t, "fresh"), "ctx.storage.get") {
		t.Fatal("the template's code was not stored")
	}
	b.do("run", chromedp.Click(chromedp.CSS(".cm-content")), ctrl("\r"))
	b.waitFor("the result", `document.querySelector('.run-status') && document.querySelector('.run-status').dataset.status === '200'`)

	b.do("schedule tab", chromedp.Click(chromedp.CSS(`.tab[data-tab="Schedule"]`)),
		chromedp.Click(chromedp.CSS(".cron-schedule")), chromedp.KeyEvent("0 */6 * * *"))
	b.waitFor("five next runs", `document.querySelectorAll('.cron-next li').length === 5 && !document.querySelector('.cron-next li.error')`)
	b.do("save the schedule", chromedp.Click(chromedp.CSS(".cron .buttons button.primary")))
	b.waitFor("schedule saved", `document.querySelector('.cron-msg').textContent.startsWith('runs:')`)
	daemontest.MustStatus(t, api.Call("GET", "/api/cron/"+container+"/fresh", f.tenant, nil), 200, "the job")

	b.do("rename", chromedp.Click(chromedp.CSS(".rename-to")), chromedp.KeyEvent("renamed"), chromedp.Click(chromedp.CSS("form.rename button")))
	b.waitFor("renamed opened", `document.querySelector('.webtask-name').textContent === 'renamed'`)
	if !strings.Contains(f.storedCode(t, "renamed"), "ctx.storage.get") {
		t.Error("the code did not move")
	}
	daemontest.MustStatus(t, api.Call("GET", "/api/webtask/"+container+"/fresh", f.tenant, nil), 404, "the old name")
	var d struct {
		Data string `json:"data"`
	}
	api.Call("GET", "/api/webtask/"+container+"/renamed/data", f.tenant, nil).JSON(t, &d)
	if d.Data != `{"count":1}` {
		t.Errorf("storage after the rename: %q", d.Data)
	}
	var job struct {
		Schedule string `json:"schedule"`
	}
	r := api.Call("GET", "/api/cron/"+container+"/renamed", f.tenant, nil)
	daemontest.MustStatus(t, r, 200, "the moved job")
	if r.JSON(t, &job); job.Schedule != "0 */6 * * *" {
		t.Errorf("moved job schedule %q", job.Schedule)
	}
	daemontest.MustStatus(t, api.Call("GET", "/api/cron/"+container+"/fresh", f.tenant, nil), 404, "the old job")

	b.do("delete (two clicks)", chromedp.Click(chromedp.CSS("button.delete")), chromedp.Click(chromedp.CSS("button.delete")))
	b.waitFor("deleted", `document.querySelector('.status').textContent === 'deleted renamed'`)
	daemontest.MustStatus(t, api.Call("GET", "/api/webtask/"+container+"/renamed", f.tenant, nil), 404, "deleted")
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}
