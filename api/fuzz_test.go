package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzWebtaskRoutes sends fuzzed container and webtask names and query
// strings (offset, limit, meta filters) to the webtask read routes: every
// answer is below 500 and JSON, and a listed webtask matches every meta
// filter of the query.
func FuzzWebtaskRoutes(f *testing.F) {
	for _, s := range [][3]string{
		{"test", "hello", ""}, {"test", "hello", "meta=team:a"}, {"test", "x", "meta=team:a&meta=team:b"},
		{"test", "x", "meta=team%3Aa&meta=env:prod&limit=1&offset=1"}, {"test", "x", "meta=:x"}, {"test", "x", "meta=nocolon"},
		{"test", "..", "offset=-1"}, {"a/b", "%2e%2e", "limit=99999999999999999999"}, {"test", "é", "meta=k:v:w"},
		{"test", "x", "meta=%zz"}, {"", "", "decrypt=true&fetch_code=1"}, {"test", "hello", "meta=team:a;meta=x:y"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	e := newEnv(f, Config{})
	for _, w := range []struct{ name, meta string }{{"hello", `{"team":"a"}`}, {"two", `{"team":"a","env":"prod"}`}, {"three", `{"team":"b"}`}} {
		body := `{"code":"module.exports = cb => cb()","meta":` + w.meta + `}`
		if r := e.do("PUT", "/api/webtask/test/"+w.name, e.master, body); r.Code != 200 {
			f.Fatalf("PUT %s: %d %s", w.name, r.Code, r.Body)
		}
	}
	get := func(t *testing.T, target string) (*httptest.ResponseRecorder, *url.URL) {
		u, err := url.Parse(target)
		if err != nil {
			return nil, nil
		}
		r := &http.Request{Method: "GET", URL: u, RequestURI: target, Header: http.Header{}, Host: "example.com", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		r.Header.Set("Authorization", "Bearer "+e.master)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		if w.Code >= 500 || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("GET %s: %d %q %s", target, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
		return w, u
	}
	f.Fuzz(func(t *testing.T, container, name, query string) {
		base := "/api/webtask/" + url.PathEscape(container)
		get(t, base+"/"+url.PathEscape(name)+"?"+query)
		w, u := get(t, base+"?"+query)
		if w == nil || w.Code != 200 {
			return
		}
		var items []struct {
			Meta map[string]string `json:"meta"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &items); err != nil {
			t.Fatalf("list answer is not a JSON array: %s", w.Body)
		}
		q, _ := url.ParseQuery(u.RawQuery) // as sent: a '#' starts the fragment
		for _, it := range items {
			for _, f := range q["meta"] {
				k, v, _ := strings.Cut(f, ":")
				if got, has := it.Meta[k]; !has || got != v {
					t.Fatalf("query %q listed a webtask with meta %v", query, it.Meta)
				}
			}
		}
	})
}
