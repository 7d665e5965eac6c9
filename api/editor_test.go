package api

import (
	"bytes"
	"compress/gzip"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"

	"github.com/webtaskd/webtaskd/api/editor"
)

// The editor's page and bundle, served by the API's handler.
func TestEditorRoutes(t *testing.T) {
	e := newEnv(t, Config{EditorFrameAncestors: []string{"https://app.example", "'self'"}})
	w := e.do("GET", "/edit/demo", "", "")
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("page: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	csp := w.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "connect-src 'self'",
		"frame-ancestors https://app.example 'self'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP allows unsafe sources: %q", csp)
	}
	page := w.Body.String()
	if strings.Contains(page, "<script>") || strings.Contains(page, "style=") {
		t.Errorf("page has inline script or style:\n%s", page)
	}
	nonce := regexp.MustCompile(`webtaskd-style-nonce" content="([^"]+)"`).FindStringSubmatch(page)
	if nonce == nil || !strings.Contains(csp, "'nonce-"+nonce[1]+"'") {
		t.Fatalf("the page's style nonce is not the CSP's: %q / %q", nonce, csp)
	}
	if again := e.do("GET", "/edit/demo", "", ""); strings.Contains(again.Body.String(), nonce[1]) {
		t.Error("two pages share a nonce")
	}
	js := regexp.MustCompile(`/editor/assets/app\.[0-9a-f]{16}\.js`).FindString(page)
	css := regexp.MustCompile(`/editor/assets/app\.[0-9a-f]{16}\.css`).FindString(page)
	if js == "" || css == "" {
		t.Fatalf("page does not reference hashed assets:\n%s", page)
	}

	plain := e.do("GET", js, "", "")
	if plain.Code != 200 || plain.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" ||
		plain.Header().Get("Content-Encoding") != "" || !strings.HasPrefix(plain.Header().Get("Content-Type"), "text/javascript") {
		t.Fatalf("asset: %d %v", plain.Code, plain.Header())
	}
	gz := e.do("GET", js, "", "", "Accept-Encoding", "br;q=0.5, gzip;q=0.8")
	if gz.Header().Get("Content-Encoding") != "gzip" || gz.Body.Len() >= plain.Body.Len() {
		t.Fatalf("gzip: %q, %d bytes (plain %d)", gz.Header().Get("Content-Encoding"), gz.Body.Len(), plain.Body.Len())
	}
	zr, err := gzip.NewReader(gz.Body)
	if err != nil {
		t.Fatal(err)
	}
	unz, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unz, plain.Body.Bytes()) {
		t.Fatalf("gzip body does not decompress to the asset (%v)", err)
	}
	if w := e.do("GET", js, "", "", "Accept-Encoding", "gzip;q=0"); w.Header().Get("Content-Encoding") != "" {
		t.Error("gzip sent to a client that refuses it")
	}
	// Brotli, precompressed by make assets, for each asset.
	for _, path := range []string{js, css, "/editor/embed.js", "/editor/LICENSES.txt"} {
		id := e.do("GET", path, "", "")
		br := e.do("GET", path, "", "", "Accept-Encoding", "gzip, deflate, br")
		if br.Code != 200 || br.Header().Get("Content-Encoding") != "br" || br.Body.Len() >= id.Body.Len() {
			t.Fatalf("%s with br: %d %q, %d bytes (plain %d)", path, br.Code, br.Header().Get("Content-Encoding"), br.Body.Len(), id.Body.Len())
		}
		if v := br.Header().Values("Vary"); len(v) != 1 || v[0] != "Accept-Encoding" {
			t.Errorf("%s: Vary %q", path, v)
		}
		unbr, err := io.ReadAll(brotli.NewReader(br.Body))
		if err != nil || !bytes.Equal(unbr, id.Body.Bytes()) {
			t.Fatalf("%s: the br body does not decode to the asset (%v; run make assets)", path, err)
		}
		if br.Header().Get("ETag") == id.Header().Get("ETag") {
			t.Errorf("%s: br and identity share the ETag %s", path, id.Header().Get("ETag"))
		}
		if w := e.do("GET", path, "", "", "Accept-Encoding", "br", "If-None-Match", br.Header().Get("ETag")); w.Code != 304 {
			t.Errorf("%s: If-None-Match with br: %d", path, w.Code)
		}
	}
	for ae, want := range map[string]string{"br;q=0.5, gzip": "gzip", "br, gzip": "br", "*": "br", "br;q=0": "", "identity": "", "gzip;q=0.9, br;q=0.9": "br"} {
		if got := e.do("GET", js, "", "", "Accept-Encoding", ae).Header().Get("Content-Encoding"); got != want {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, want %q", ae, got, want)
		}
	}
	if w := e.do("GET", js, "", "", "If-None-Match", plain.Header().Get("ETag")); w.Code != 304 {
		t.Errorf("If-None-Match: %d", w.Code)
	}
	if w := e.do("GET", css, "", ""); w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") {
		t.Errorf("css: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	wantError(t, e.do("GET", "/editor/assets/app.0000000000000000.js", "", ""), 404, "no such editor asset")

	w = e.do("GET", "/editor/embed.js", "", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "ExtendEditor") || w.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("embed.js: %d %v", w.Code, w.Header())
	}
	if w := e.do("GET", "/editor/LICENSES.txt", "", ""); w.Code != 200 || !strings.Contains(w.Body.String(), "@codemirror/view") {
		t.Errorf("LICENSES.txt: %d", w.Code)
	}
}

func TestEditorFrameAncestorsDefaultAndInvalid(t *testing.T) {
	e := newEnv(t, Config{})
	if csp := e.do("GET", "/edit/demo", "", "").Header().Get("Content-Security-Policy"); !strings.HasSuffix(csp, "frame-ancestors *") {
		t.Errorf("default CSP %q: want any ancestor", csp)
	}
	for _, bad := range [][]string{{"https://a.example; script-src *"}, {"https://a.example https://b.example"}, {""}, {"'unsafe-inline'"}} {
		if err := editor.ValidateFrameAncestors(bad); err == nil {
			t.Errorf("frame ancestors %q accepted", bad)
		}
	}
	if err := editor.ValidateFrameAncestors([]string{"https://a.example", "http://127.0.0.1:8080", "'self'", "https://*.example"}); err != nil {
		t.Error(err)
	}
}

func TestCronNext(t *testing.T) {
	e, _, _ := newCronEnv(t)
	e.now = time.Date(2026, 3, 28, 23, 0, 0, 0, time.UTC)
	w := e.do("GET", "/api/cron/test/hello/next?schedule=0+*/6+*+*+*&tz=Europe/Paris&count=3", e.tenant, "")
	if w.Code != 200 {
		t.Fatalf("next: %d %s", w.Code, w.Body)
	}
	got := decode[struct {
		Next []string `json:"next"`
		TZ   string   `json:"tz"`
	}](t, w)
	// 2026-03-29 is the spring-forward day in Paris (02:00 -> 03:00).
	want := []string{"2026-03-29T06:00:00+02:00", "2026-03-29T12:00:00+02:00", "2026-03-29T18:00:00+02:00"}
	if strings.Join(got.Next, ",") != strings.Join(want, ",") || got.TZ != "Europe/Paris" {
		t.Errorf("next = %v in %s, want %v", got.Next, got.TZ, want)
	}
	wantError(t, e.do("GET", "/api/cron/test/hello/next?schedule=nope", e.tenant, ""), 400, "")
	wantError(t, e.do("GET", "/api/cron/test/hello/next?schedule=*+*+*+*+*&count=99", e.tenant, ""), 400, "count must be an integer from 1 to 20")
	wantError(t, e.do("GET", "/api/cron/test/nojob/next", e.tenant, ""), 404, "")
	wantError(t, e.do("GET", "/api/cron/other/hello/next?schedule=*+*+*+*+*", e.tenant, ""), 403, "")
}
