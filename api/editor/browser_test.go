package editor_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/webtaskd/webtaskd/daemon/daemontest"
	"github.com/webtaskd/webtaskd/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { daemontest.RunTests(m, "editor browser") }

// chromiumPath finds Debian's chromium (make deps installs it).
func chromiumPath(t testing.TB) string {
	t.Helper()
	return sandboxtest.NeedTool(t, "chromium", "chromium-browser")
}

// npmPath finds the host's npm (make deps installs it), which the daemon
// runs to provision the dependency scenario's module.
func npmPath(t testing.TB) string {
	t.Helper()
	return sandboxtest.NeedTool(t, "npm")
}

// browser is one fresh headless chromium (own user data dir) and what it
// reported: console errors, uncaught exceptions, log entries (CSP).
type browser struct {
	t   testing.TB
	ctx context.Context

	mu       sync.Mutex
	errors   []string
	messages []string
	requests []string // URLs the page requested
	dialogs  chan *page.EventJavascriptDialogOpening
}

// newBrowser starts chromium for t, bounded by timeout; on failure it
// saves a screenshot of the page (screenshotDir).
func newBrowser(t testing.TB, timeout time.Duration) *browser {
	t.Helper()
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	b := &browser{t: t, ctx: ctx, dialogs: make(chan *page.EventJavascriptDialogOpening, 4)}
	if err := chromedp.Listen(ctx, b.listen); err != nil { // starts the browser
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b.screenshot("failure-" + t.Name())
		}
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return b
}

func (b *browser) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range ev.Args {
			parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
		}
		msg := string(ev.Type) + ": " + strings.Join(parts, " ")
		b.messages = append(b.messages, msg)
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			b.errors = append(b.errors, msg)
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := "exception: " + d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		b.errors = append(b.errors, msg)
	case *page.EventJavascriptDialogOpening:
		select {
		case b.dialogs <- ev:
		default:
		}
	case *network.EventRequestWillBeSent:
		b.requests = append(b.requests, ev.Request.URL)
	case *cdplog.EventEntryAdded:
		msg := "log " + string(ev.Entry.Level) + ": " + ev.Entry.Text
		if ev.Entry.URL != "" {
			msg += " (" + ev.Entry.URL + ")"
		}
		b.messages = append(b.messages, msg)
		if ev.Entry.Level == cdplog.EntryLevelError {
			b.errors = append(b.errors, msg)
		}
	}
}

// consoleErrors returns the errors seen so far.
func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

func (b *browser) consoleMessages() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.messages...)
}

// requestsWith returns the requested URLs that contain s.
func (b *browser) requestsWith(s string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, u := range b.requests {
		if strings.Contains(u, s) {
			out = append(out, u)
		}
	}
	return out
}

// waitForMessage waits, bounded, for a console or log message containing s.
func (b *browser) waitForMessage(what, s string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, m := range b.consoleMessages() {
			if strings.Contains(m, s) {
				return
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting for %s: no message with %q in %q", what, s, b.consoleMessages())
		}
		select {
		case <-b.ctx.Done():
			b.t.Fatalf("waiting for %s: %v", what, b.ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// num evaluates a JavaScript expression that yields a number (or a
// promise of one).
func (b *browser) num(expr string) float64 {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[float64](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

// waitSteady waits, bounded, until cond has held for d without a break (a
// person's pause: CodeMirror ignores Enter on a completion list younger
// than its interaction delay).
func (b *browser) waitSteady(what, cond string, d time.Duration) {
	b.t.Helper()
	b.waitFor(what, fmt.Sprintf(`(() => {
		if (!(%s)) { window.__steadySince = 0; return false; }
		window.__steadySince = window.__steadySince || performance.now();
		return performance.now() - window.__steadySince >= %d;
	})()`, cond, d.Milliseconds()))
}

// press sends one key press without a char event (chromedp's KeyEvent
// also types the key's character, which Enter must not).
func press(key string, vk int64) chromedp.Action[chromedp.Void] {
	return chord(key, key, vk, 0)
}

// chord sends one key press with modifiers (bits: Alt 1, Ctrl 2, Meta 4,
// Shift 8) and the key's virtual key code, as a keyboard does (CodeMirror
// reads the code of shifted letters: Ctrl-Shift-M).
func chord(key, code string, vk, mods int64) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp} {
			if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, input.DispatchKeyEventParams{
				Type: typ, Key: key, Code: code, WindowsVirtualKeyCode: vk, NativeVirtualKeyCode: vk, Modifiers: mods,
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

// clickAnswering clicks sel, which must open a JavaScript dialog, answers
// it (accept or dismiss) and returns its message.
func (b *browser) clickAnswering(sel string, accept bool) string {
	b.t.Helper()
	clicked := make(chan error, 1)
	go func() { clicked <- chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(sel))) }()
	var msg string
	select {
	case d := <-b.dialogs:
		msg = d.Message
	case err := <-clicked:
		b.t.Fatalf("click %s opened no dialog (%v)", sel, err)
	case <-time.After(20 * time.Second):
		b.t.Fatalf("click %s: no dialog within 20 s", sel)
	}
	answer := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: accept})
		return err
	})
	b.do("answer the dialog", answer)
	select {
	case err := <-clicked:
		if err != nil {
			b.t.Fatalf("click %s: %v", sel, err)
		}
	case <-time.After(20 * time.Second):
		b.t.Fatalf("click %s did not end after the dialog", sel)
	}
	return msg
}

// do runs actions, failing the test on error.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v (console: %q)", what, err, b.consoleMessages())
	}
}

// str evaluates a JavaScript expression that yields a string.
func (b *browser) str(expr string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

// waitFor polls the JavaScript condition cond until it is truthy, bounded.
func (b *browser) waitFor(what, cond string) {
	b.t.Helper()
	b.waitForLong(what, 20*time.Second, cond)
}

// waitForLong is waitFor with its own bound (for what takes a process
// outside the page, such as an npm install).
func (b *browser) waitForLong(what string, timeout time.Duration, cond string) {
	b.t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[bool]("!!("+cond+")",
		chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		b.t.Fatalf("waiting for %s: %v (console: %q)", what, err, b.consoleMessages())
	}
}

// text returns the textContent of the first element matching sel ("" when none).
func (b *browser) text(sel string) string {
	b.t.Helper()
	return b.str(fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel))
}

// screenshot saves a full-page PNG under screenshotDir (or docs/ when
// name starts with "docs/") and logs where.
func (b *browser) screenshot(name string) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	var path string
	if rest, ok := strings.CutPrefix(name, "docs/"); ok {
		path = filepath.Join("..", "..", "docs", rest+".png")
	} else {
		dir := screenshotDir()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.t.Logf("screenshot dir: %v", err)
			return
		}
		path = filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(name)+".png")
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", path, err)
		return
	}
	b.t.Logf("screenshot saved: %s", path)
}

// screenshotDir is $WEBTASKD_SCREENSHOT_DIR, or webtaskd-editor-screenshots
// in the temporary directory.
func screenshotDir() string {
	if d := os.Getenv("WEBTASKD_SCREENSHOT_DIR"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "webtaskd-editor-screenshots")
}

// docsScreenshots is true when the tests should refresh docs/editor-*.png
// (WEBTASKD_DOCS_SCREENSHOTS=1).
func docsScreenshots() bool { return os.Getenv("WEBTASKD_DOCS_SCREENSHOTS") == "1" }
