package editor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/webtaskd/webtaskd/daemon/daemontest"
)

// BenchmarkEditorFirstLoad is the editor's first load from a cold browser
// cache: from navigating to /edit/{c}#/{name}/{token} until the webtask's
// code shows (page, bundle, and the API calls that open a webtask), on a
// daemon of its own. The figure is in docs/PERFORMANCE.md; it is not a
// test assertion.
//
//	go test -tags seccomp -run '^$' -bench EditorFirstLoad -benchtime 20x ./api/editor
func BenchmarkEditorFirstLoad(b *testing.B) {
	daemontest.RequireRoot(b)
	chromiumPath(b)
	env := daemontest.Start(b, daemontest.Config(b))
	r := env.Call("POST", "/api/tokens/issue", env.Master, map[string]any{"ten": container})
	daemontest.MustStatus(b, r, 200, "issue tenant token")
	tenant := strings.TrimSpace(string(r.Body))
	code := "module.exports = function (ctx, cb) { cb(null, { first: 'load' }); };\n"
	daemontest.MustStatus(b, env.Call("PUT", "/api/webtask/"+container+"/first", tenant,
		map[string]any{"code": code, "secrets": map[string]string{"K": "v"}}), 200, "PUT webtask")
	br := newBrowser(b, 10*time.Minute)
	clearCache := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.ClearBrowserCache, cdp.Empty{})
		return err
	})
	url := env.Base + "/edit/" + container + "#/first/" + tenant
	ready := `document.querySelector('.cm-content') && document.querySelector('.cm-content').textContent.includes("first: 'load'")`
	for b.Loop() {
		b.StopTimer()
		br.do("blank and clear the cache", chromedp.Navigate("about:blank"), clearCache)
		b.StartTimer()
		br.do("load", chromedp.Navigate(url))
		br.waitFor("the code", ready)
	}
	b.StopTimer()
	transferred := br.num(`performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation')).reduce((n, e) => n + e.transferSize, 0)`)
	b.ReportMetric(transferred/1024, "KiB-transferred")
	b.Logf("last load transferred %.0f KiB", transferred/1024)
}
