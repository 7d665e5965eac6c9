// Package modulestest serves npm packages to real npm clients in tests: a
// minimal registry (packuments and tarballs) on loopback, so that module
// provisioning is tested without the network.
package modulestest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Package is one version of a package the registry serves.
type Package struct {
	Name, Version string
	Deps          map[string]string
	Files         map[string]string // path under package/ -> content
	Scripts       map[string]string
}

// Tarball is p as `npm pack` makes it: package/… in a gzipped tar.
func (p Package) Tarball(t testing.TB) []byte {
	t.Helper()
	manifest := map[string]any{"name": p.Name, "version": p.Version, "main": "index.js"}
	if p.Deps != nil {
		manifest["dependencies"] = p.Deps
	}
	if p.Scripts != nil {
		manifest["scripts"] = p.Scripts
	}
	pj, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"package.json": string(pj)}
	for k, v := range p.Files {
		files[k] = v
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: "package/" + name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TarballName is npm pack's file name of p.
func (p Package) TarballName() string {
	return strings.ReplaceAll(strings.TrimPrefix(p.Name, "@"), "/", "-") + "-" + p.Version + ".tgz"
}

// Registry is a minimal npm registry (packuments and tarballs) on
// loopback: a mirror for tests that must not need the network. Point npm
// at URL() (npm_config_registry).
type Registry struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	pkgs     map[string]map[string]Package // name -> version -> pkg
	tarballs map[string][]byte             // path -> tgz
	hits     map[string]int                // request path -> count
}

// NewRegistry starts a registry serving pkgs (closed when t ends).
func NewRegistry(t testing.TB, pkgs ...Package) *Registry {
	r := &Registry{t: t, pkgs: map[string]map[string]Package{}, tarballs: map[string][]byte{}, hits: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	for _, p := range pkgs {
		r.Add(p)
	}
	return r
}

// URL is the registry URL npm is given.
func (r *Registry) URL() string { return r.srv.URL + "/" }

// Add publishes p.
func (r *Registry) Add(p Package) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pkgs[p.Name] == nil {
		r.pkgs[p.Name] = map[string]Package{}
	}
	r.pkgs[p.Name][p.Version] = p
	r.tarballs["/-/"+p.TarballName()] = p.Tarball(r.t)
}

// Count is how often path (a packument /name or a tarball /-/file.tgz)
// was requested.
func (r *Registry) Count(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[path]
}

func (r *Registry) serve(w http.ResponseWriter, req *http.Request) {
	path, err := url.PathUnescape(req.URL.EscapedPath())
	if err != nil {
		http.Error(w, "bad path", 400)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hits[path]++
	if tgz, ok := r.tarballs[path]; ok {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(tgz)
		return
	}
	versions, ok := r.pkgs[strings.TrimPrefix(path, "/")]
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"Not found"}`))
		return
	}
	doc := map[string]any{"name": strings.TrimPrefix(path, "/")}
	vs := map[string]any{}
	latest := ""
	for v, p := range versions {
		tgz := r.tarballs["/-/"+p.TarballName()]
		sha1sum := sha1.Sum(tgz)
		sha512sum := sha512.Sum512(tgz)
		m := map[string]any{
			"name": p.Name, "version": v,
			"dist": map[string]any{
				"tarball":   r.srv.URL + "/-/" + p.TarballName(),
				"shasum":    hex.EncodeToString(sha1sum[:]),
				"integrity": "sha512-" + base64.StdEncoding.EncodeToString(sha512sum[:]),
			},
		}
		if p.Deps != nil {
			m["dependencies"] = p.Deps
		}
		if p.Scripts != nil {
			m["scripts"] = p.Scripts
		}
		vs[v] = m
		if v > latest {
			latest = v
		}
	}
	doc["versions"] = vs
	doc["dist-tags"] = map[string]string{"latest": latest}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(doc)
}
