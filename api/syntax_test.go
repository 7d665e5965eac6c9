package api

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/store/token"
)

func syntaxBody(t *testing.T, code string, meta map[string]string) string {
	t.Helper()
	b, err := json.Marshal(types.SyntaxRequest{Code: code, Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// POST /api/syntax/{c}: the syntax errors of the transpiler create/update
// uses, by wt-language, with line and column; bad requests are clear JSON
// errors.
func TestCheckSyntax(t *testing.T) {
	e := newEnv(t, Config{MaxBodyBytes: 4096})
	check := func(code string, meta map[string]string) types.SyntaxResult {
		t.Helper()
		w := e.do("POST", "/api/syntax/test", e.tenant, syntaxBody(t, code, meta))
		if w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		return decode[types.SyntaxResult](t, w)
	}
	if r := check("module.exports = function (ctx, cb) { cb(null, 1); };", nil); r.Language != "javascript" || r.Errors == nil || len(r.Errors) != 0 {
		t.Errorf("valid code: %+v", r)
	}
	r := check("module.exports = function (ctx, cb) {\n  cb(null, ;\n};\n", nil)
	if len(r.Errors) != 1 || r.Errors[0].Line != 2 || r.Errors[0].Column != 12 || r.Errors[0].Message != `Unexpected ";"` {
		t.Errorf("syntax error: %+v", r)
	}
	ts := "export default (ctx: any, cb: any) => cb(null, 1);"
	if r := check(ts, map[string]string{"wt-language": "typescript"}); r.Language != "typescript" || len(r.Errors) != 0 {
		t.Errorf("TypeScript: %+v", r)
	}
	if r := check(ts, nil); len(r.Errors) == 0 {
		t.Errorf("TypeScript checked as JavaScript: %+v", r)
	}
	if r := check("{{ not javascript", map[string]string{"wt-compiler": "webtask-tools/mustache"}); r.Language != "" || len(r.Errors) != 0 {
		t.Errorf("a custom compiler's input was checked: %+v", r)
	}
	if r := check("cb(null, ;", map[string]string{"wt-compiler": middlewareCompiler}); len(r.Errors) != 1 {
		t.Errorf("the middleware compiler's JavaScript was not checked: %+v", r)
	}

	wantError(t, e.do("POST", "/api/syntax/test", e.tenant, syntaxBody(t, "x", map[string]string{"wt-language": "cobol"})), 400,
		"meta wt-language must be javascript or typescript")
	wantError(t, e.do("POST", "/api/syntax/test", e.tenant, ""), 400, "the request body must be a JSON object")
	wantError(t, e.do("POST", "/api/syntax/test", e.tenant, `{"code": 1}`), 400, "")
	wantError(t, e.do("POST", "/api/syntax/test", e.tenant, `{"code": "", "extra": 1}`), 400, "")
	wantError(t, e.do("POST", "/api/syntax/test", e.tenant, syntaxBody(t, strings.Repeat("x", 5000), nil)), 413, "")
	wantError(t, e.do("POST", "/api/syntax/test", "", syntaxBody(t, "x", nil)), 403, "")
	wantError(t, e.do("POST", "/api/syntax/other", e.tenant, syntaxBody(t, "x", nil)), 403, "")
	bound := e.sign(&token.Claims{Ten: "test", Jtn: "hello"})
	wantError(t, e.do("POST", "/api/syntax/test", bound, syntaxBody(t, "x", nil)), 403, "")
	wantError(t, e.do("POST", "/api/syntax/bad%20name", e.tenant, syntaxBody(t, "x", nil)), 400, "invalid container name")

	// A check changes nothing: it is not an audited management action
	// (the editor sends one whenever the user pauses typing).
	if audited(httptest.NewRequest("POST", "/api/syntax/test", nil)) || !audited(httptest.NewRequest("PUT", "/api/webtask/test/x", nil)) {
		t.Error("syntax checks are audited, or webtask writes are not")
	}
}
