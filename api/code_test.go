package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/token"
)

// fakeCodes is an in-memory CodeStore that counts reads and writes.
type fakeCodes struct {
	mu         sync.Mutex
	m          map[string]string
	puts, gets int
}

func newFakeCodes() *fakeCodes { return &fakeCodes{m: map[string]string{}} }

func (f *fakeCodes) PutCode(_ context.Context, code string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	h := store.CodeHash(code)
	f.m[h] = code
	return h, nil
}

func (f *fakeCodes) GetCode(_ context.Context, hash string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	c, ok := f.m[hash]
	if !ok {
		return "", fmt.Errorf("code blob %s: %w", hash, errdefs.New(store.ErrCodeNotFound, "the code named by the url claim is not stored"))
	}
	return c, nil
}

func (f *fakeCodes) count() (puts, gets, blobs int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts, f.gets, len(f.m)
}

func TestIssueUnnamedCode(t *testing.T) {
	e := newEnv(t, Config{})
	code := "module.exports = (ctx, cb) => cb(null, ctx.secrets.S)"
	raw, c := e.issueUnnamed(`{"ten":"test","code":` + jsonString(code) + `,"ectx":{"S":"s3"},"pctx":{"P":"p"},"pb":1,"dd":0}`)
	hash := store.CodeHash(code)
	if c.URL != "webtask:///code/"+hash {
		t.Fatalf("url claim = %q, want webtask:///code/%s", c.URL, hash)
	}
	if strings.Contains(raw, "ctx.secrets") {
		t.Fatal("the token carries the code")
	}
	if _, ok := parseCodeURL(c.URL); !ok {
		t.Fatal("parseCodeURL refuses the minted url")
	}
	if _, _, ok := parseWebtaskURL(c.URL); ok {
		t.Fatal("a code url is confusable with webtask://{container}/{name}")
	}
	if puts, _, blobs := e.codes.count(); puts != 1 || blobs != 1 || e.fstore.writeCount() != 0 {
		t.Fatalf("puts %d blobs %d webtask writes %d; want one blob and no webtask", puts, blobs, e.fstore.writeCount())
	}

	// Running it: ?key= and Bearer alike, code from the blob, secrets
	// from the sealed ectx, ctx.token exposed (the token fixes the code).
	for _, via := range []string{"key", "bearer"} {
		var w2 = e.do("GET", "/api/run/test?key="+url.QueryEscape(raw)+"&x=1", "", "")
		if via == "bearer" {
			w2 = e.do("POST", "/api/run/test", raw, `{"not":"code"}`)
		}
		if w2.Code != 200 {
			t.Fatalf("%s: run %d %s", via, w2.Code, w2.Body)
		}
		r := e.runner.last(t)
		if r.Code != code || r.CodeHash != hash || r.Secrets["S"] != "s3" || r.Params["P"] != "p" || r.PB != 1 || r.Token != raw {
			t.Fatalf("%s: request = code %q hash %q secrets %v params %v pb %d token set %v", via, r.Code, r.CodeHash, r.Secrets, r.Params, r.PB, r.Token == raw)
		}
		if via == "bearer" && string(r.Body) != `{"not":"code"}` {
			t.Fatalf("the body of a code token's run was taken as code: body %q", r.Body)
		}
	}
	// Another container: 403, nothing run.
	n := e.runner.count()
	wantError(t, e.do("GET", "/api/run/other?key="+url.QueryEscape(raw), "", ""), 403, "not authorized to perform operation on tenant `other`")
	if e.runner.count() != n {
		t.Fatal("a foreign-container run reached the runner")
	}
	// inspect fetch_code returns the stored code, the url stays.
	w := e.do("GET", "/api/tokens/inspect?token="+url.QueryEscape(raw)+"&fetch_code=true", e.master, "")
	got := decode[map[string]any](t, w)
	if got["code"] != code || got["url"] != c.URL {
		t.Fatalf("inspect = %v", got)
	}

	// The same code again: one blob.
	w = e.do("POST", "/api/tokens/issue", e.tenant, `{"ten":"test","code":`+jsonString(code)+`}`)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if _, _, blobs := e.codes.count(); blobs != 1 {
		t.Fatalf("blobs = %d after issuing the same code twice", blobs)
	}
}

func TestUnnamedCodeRefusals(t *testing.T) {
	e := newEnv(t, Config{})
	// Requests can never name server-minted urls.
	for _, u := range []string{"webtask:///code/" + strings.Repeat("a", 64), "webtask://test/x"} {
		w := e.do("POST", "/api/tokens/issue", e.tenant, `{"ten":"test","url":"`+u+`"}`)
		wantError(t, w, 400, "the `url` claim must be an http or https URL")
	}
	// A parent with url cannot issue code.
	parent := e.do("POST", "/api/tokens/issue", e.master, `{"ten":"test","code":"module.exports = cb => cb()","dd":1}`).Body.String()
	w := e.do("POST", "/api/tokens/issue", parent, `{"ten":"test","code":"x"}`)
	wantError(t, w, 400, "the `code` claim cannot be specified if the authentication token already specifies `url`")
	if _, _, blobs := e.codes.count(); blobs != 1 {
		t.Fatalf("blobs = %d, a refused issue stored code", blobs)
	}
	// A code url whose blob is missing: 404, the runner is not reached.
	orphan := e.sign(&token.Claims{Ten: "test", URL: "webtask:///code/" + strings.Repeat("b", 64)})
	wantError(t, e.do("GET", "/api/run/test?key="+url.QueryEscape(orphan), "", ""), 404, "the code named by the url claim is not stored")
	if e.runner.count() != 0 {
		t.Fatal("runner invoked")
	}
	// Malformed code urls are not code urls.
	for _, u := range []string{"webtask:///code/", "webtask:///code/" + strings.Repeat("A", 64), "webtask:///code/" + strings.Repeat("a", 63), "webtask://code/" + strings.Repeat("a", 64)} {
		if _, ok := parseCodeURL(u); ok {
			t.Fatalf("parseCodeURL(%q) accepted", u)
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
