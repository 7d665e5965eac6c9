// Command editorbuild bundles the Extension Editor's browser code
// (api/editor/web) into api/editor/dist with esbuild's Go API: app.js and
// app.css (CodeMirror 6 and the editor), embed.js (the embedding library)
// and LICENSES.txt (the license text of every npm package in the bundle),
// each with its brotli-compressed form (name.br).
// The output depends only on the sources and the pinned packages
// (package-lock.json), so a rebuild of an unchanged tree changes nothing
// (.ci/run checks it). Run by `make assets`, which first runs `npm ci`.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/evanw/esbuild/pkg/api"
)

func main() {
	src := flag.String("src", "api/editor/web", "the editor's source directory (package.json, node_modules, src/)")
	out := flag.String("out", "api/editor/dist", "output directory")
	flag.Parse()
	if err := build(*src, *out); err != nil {
		fmt.Fprintln(os.Stderr, "editorbuild:", err)
		os.Exit(1)
	}
}

func build(src, out string) error {
	if _, err := os.Stat(filepath.Join(src, "node_modules")); err != nil {
		return fmt.Errorf("%s/node_modules is missing: run npm ci there first (make assets does)", src)
	}
	res := api.Build(api.BuildOptions{
		EntryPoints:       []string{filepath.Join(src, "src/app.js"), filepath.Join(src, "src/embed.js")},
		Bundle:            true,
		Outdir:            out,
		Write:             false,
		Metafile:          true,
		Format:            api.FormatIIFE,
		Target:            api.ES2020,
		MinifySyntax:      true,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		LegalComments:     api.LegalCommentsEndOfFile,
		Charset:           api.CharsetUTF8,
		LogLevel:          api.LogLevelWarning,
		AbsWorkingDir:     mustAbs("."),
	})
	if len(res.Errors) > 0 {
		return fmt.Errorf("%d build errors (above)", len(res.Errors))
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	lic, err := licenses(src, res.Metafile)
	if err != nil {
		return err
	}
	files := map[string][]byte{filepath.Join(out, "LICENSES.txt"): lic}
	for _, f := range res.OutputFiles {
		files[f.Path] = f.Contents
	}
	for path, body := range files {
		if err := os.WriteFile(path, body, 0o644); err != nil {
			return err
		}
		br, err := compressBrotli(body)
		if err != nil {
			return fmt.Errorf("brotli %s: %w", path, err)
		}
		if err := os.WriteFile(path+".br", br, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// compressBrotli is body at brotli's best quality: done here, once per
// build (the daemon serves these bytes to clients accepting br and never
// compresses per request). The encoder is deterministic, so a rebuild of
// unchanged sources leaves the .br files unchanged.
func compressBrotli(body []byte) ([]byte, error) {
	var buf bytes.Buffer
	w := brotli.NewWriterLevel(&buf, brotli.BestCompression)
	if _, err := w.Write(body); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// licenses gathers the LICENSE file of every npm package that contributed
// an input to the bundle, in name order.
func licenses(src, metafile string) ([]byte, error) {
	var meta struct {
		Inputs map[string]json.RawMessage `json:"inputs"`
	}
	if err := json.Unmarshal([]byte(metafile), &meta); err != nil {
		return nil, fmt.Errorf("metafile: %w", err)
	}
	seen := map[string]bool{}
	for line := range meta.Inputs {
		i := strings.LastIndex(line, "node_modules/")
		if i < 0 {
			continue
		}
		rest := line[i+len("node_modules/"):]
		parts := strings.SplitN(rest, "/", 3)
		name := parts[0]
		if strings.HasPrefix(name, "@") && len(parts) > 1 {
			name += "/" + parts[1]
		}
		seen[name] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("Third-party software bundled in the webtaskd Extension Editor (app.js, app.css).\n")
	for _, n := range names {
		dir := filepath.Join(src, "node_modules", n)
		text, err := licenseText(dir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		fmt.Fprintf(&b, "\n==== %s %s ====\n\n%s\n", n, version(dir), strings.TrimSpace(text))
	}
	return []byte(b.String()), nil
}

func licenseText(dir string) (string, error) {
	for _, f := range []string{"LICENSE", "LICENSE.md", "LICENSE.txt", "license", "LICENCE"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			return string(b), nil
		}
	}
	return "", fmt.Errorf("no LICENSE file")
}

func version(dir string) string {
	var pkg struct {
		Version string `json:"version"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil || json.Unmarshal(b, &pkg) != nil {
		return ""
	}
	return pkg.Version
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return a
}
