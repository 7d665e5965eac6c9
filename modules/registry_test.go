package modules

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

// testPkg is one version of a package the test registry serves.
type testPkg struct {
	name, version string
	deps          map[string]string
	files         map[string]string // path under package/ -> content
	scripts       map[string]string
}

// tarball is p as `npm pack` makes it: package/… in a gzipped tar.
func (p testPkg) tarball(t testing.TB) []byte {
	t.Helper()
	manifest := map[string]any{"name": p.name, "version": p.version, "main": "index.js"}
	if p.deps != nil {
		manifest["dependencies"] = p.deps
	}
	if p.scripts != nil {
		manifest["scripts"] = p.scripts
	}
	pj, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"package.json": string(pj)}
	for k, v := range p.files {
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

// tarballName is npm pack's file name of p.
func (p testPkg) tarballName() string {
	return strings.ReplaceAll(strings.TrimPrefix(p.name, "@"), "/", "-") + "-" + p.version + ".tgz"
}

// testRegistry is a minimal npm registry (packuments and tarballs) on
// loopback: a mirror for tests that must not need the network.
type testRegistry struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	pkgs     map[string]map[string]testPkg // name -> version -> pkg
	tarballs map[string][]byte             // path -> tgz
	hits     map[string]int                // request path -> count
}

func newTestRegistry(t testing.TB, pkgs ...testPkg) *testRegistry {
	r := &testRegistry{t: t, pkgs: map[string]map[string]testPkg{}, tarballs: map[string][]byte{}, hits: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	for _, p := range pkgs {
		r.add(p)
	}
	return r
}

func (r *testRegistry) URL() string { return r.srv.URL + "/" }

func (r *testRegistry) add(p testPkg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pkgs[p.name] == nil {
		r.pkgs[p.name] = map[string]testPkg{}
	}
	r.pkgs[p.name][p.version] = p
	r.tarballs["/-/"+p.tarballName()] = p.tarball(r.t)
}

// count is how often path (a packument /name or a tarball /-/file.tgz)
// was requested.
func (r *testRegistry) count(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[path]
}

func (r *testRegistry) serve(w http.ResponseWriter, req *http.Request) {
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
		tgz := r.tarballs["/-/"+p.tarballName()]
		sha1sum := sha1.Sum(tgz)
		sha512sum := sha512.Sum512(tgz)
		m := map[string]any{
			"name": p.name, "version": v,
			"dist": map[string]any{
				"tarball":   r.srv.URL + "/-/" + p.tarballName(),
				"shasum":    hex.EncodeToString(sha1sum[:]),
				"integrity": "sha512-" + base64.StdEncoding.EncodeToString(sha512sum[:]),
			},
		}
		if p.deps != nil {
			m["dependencies"] = p.deps
		}
		if p.scripts != nil {
			m["scripts"] = p.scripts
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
