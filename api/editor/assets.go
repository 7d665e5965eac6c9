package editor

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sync"
)

// dist is the built bundle (make assets; committed, so that a clean clone
// builds without a JavaScript toolchain).
//
//go:embed dist
var dist embed.FS

// asset is one served file, compressed once.
type asset struct {
	ctype string
	body  []byte
	gz    []byte // nil when gzip does not make it smaller
	br    []byte // brotli, precompressed by make assets; nil when not smaller
	etag  string
}

// bundle is the editor's files, by served name.
type bundle struct {
	appJS, appCSS string // hashed names: app.<hash>.js, app.<hash>.css
	hashed        map[string]*asset
	embedJS       *asset
	licenses      *asset
}

var (
	loadOnce   sync.Once
	loaded     *bundle
	loadFailed error
)

// load reads, hashes and compresses the embedded files once per process.
func load() (*bundle, error) {
	loadOnce.Do(func() { loaded, loadFailed = build(dist) })
	return loaded, loadFailed
}

func build(fsys fs.FS) (*bundle, error) {
	read := func(name, ctype string) (*asset, error) {
		b, err := fs.ReadFile(fsys, "dist/"+name)
		if err != nil {
			return nil, fmt.Errorf("editor: bundle file %s: %w (run make assets)", name, err)
		}
		a, err := newAsset(ctype, b)
		if err != nil {
			return nil, err
		}
		// Brotli at its best quality is too slow for a start (seconds of
		// CPU): make assets writes it next to the file (dist/name.br).
		br, err := fs.ReadFile(fsys, "dist/"+name+".br")
		if err != nil {
			return nil, fmt.Errorf("editor: bundle file %s.br: %w (run make assets)", name, err)
		}
		if len(br) < len(b) {
			a.br = br
		}
		return a, nil
	}
	b := &bundle{hashed: map[string]*asset{}}
	js, err := read("app.js", "text/javascript; charset=utf-8")
	if err != nil {
		return nil, err
	}
	css, err := read("app.css", "text/css; charset=utf-8")
	if err != nil {
		return nil, err
	}
	b.appJS, b.appCSS = "app."+js.etag+".js", "app."+css.etag+".css"
	b.hashed[b.appJS], b.hashed[b.appCSS] = js, css
	if b.embedJS, err = read("embed.js", "text/javascript; charset=utf-8"); err != nil {
		return nil, err
	}
	if b.licenses, err = read("LICENSES.txt", "text/plain; charset=utf-8"); err != nil {
		return nil, err
	}
	return b, nil
}

// newAsset hashes body (the etag and the name part of hashed files) and
// gzips it when that helps.
func newAsset(ctype string, body []byte) (*asset, error) {
	sum := sha256.Sum256(body)
	a := &asset{ctype: ctype, body: body, etag: hex.EncodeToString(sum[:8])}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(body); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if buf.Len() < len(body) {
		a.gz = buf.Bytes()
	}
	return a, nil
}

// page is the editor's HTML: no inline script or style, the bundle by its
// hashed names. The container and the token are read by the script from the
// address (the token only from the fragment, which no request carries).
// nonce is this response's style nonce: CodeMirror injects its generated
// styles as <style> elements carrying it (EditorView.cspNonce).
func page(js, css, nonce string) []byte {
	return []byte(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="webtaskd-style-nonce" content="` + nonce + `">
<title>webtaskd editor</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/editor/assets/` + css + `">
<script defer src="/editor/assets/` + js + `"></script>
</head>
<body>
<div id="app"><noscript>The webtaskd editor needs JavaScript.</noscript></div>
</body>
</html>
`)
}
