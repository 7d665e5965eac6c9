package transpile

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

func TestNeeded(t *testing.T) {
	for _, c := range []struct {
		code, lang string
		want       bool
	}{
		{"module.exports = (ctx, cb) => cb(null, 1)", JavaScript, false},
		{"const m = await import('x'); module.exports = cb => cb()", JavaScript, false},
		{"// export default is a comment here\nmodule.exports = cb => cb()", JavaScript, false},
		{"export default function (ctx, cb) { cb() }", JavaScript, true},
		{"import _ from \"lodash\"\nmodule.exports = cb => cb()", JavaScript, true},
		{"  export { handler as default }", JavaScript, true},
		{"\"use latest\";\nmodule.exports = cb => cb()", JavaScript, true},
		{"module.exports = cb => cb()", TypeScript, true},
	} {
		if got := Needed(c.code, c.lang); got != c.want {
			t.Errorf("Needed(%q, %s) = %v, want %v", c.code, c.lang, got, c.want)
		}
	}
}

func TestLanguage(t *testing.T) {
	for meta, want := range map[string]string{"": JavaScript, "javascript": JavaScript, "TypeScript": TypeScript} {
		got, err := Language(map[string]string{MetaLanguage: meta})
		if err != nil || got != want {
			t.Errorf("Language(%q) = %q, %v; want %q", meta, got, err, want)
		}
	}
	if _, err := Language(map[string]string{MetaLanguage: "coffeescript"}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Language(coffeescript) = %v, want ErrInvalid", err)
	}
}

func TestSyntaxErrorNamesLineAndColumn(t *testing.T) {
	_, err := Transform("export default function (ctx, cb) {\n  cb(null, 1\n}\n", JavaScript)
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	if !strings.Contains(err.Error(), "line 3, column 1") || !strings.Contains(err.Error(), "SyntaxError") {
		t.Fatalf("err = %q, want SyntaxError at line 3, column 1", err)
	}
	_, err = Transform("const x: number = ;\nexport default (cb: any) => cb()", TypeScript)
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "line 1, column 19") {
		t.Fatalf("TypeScript err = %v, want line 1, column 19", err)
	}
}

// TestOutputRunsInNode loads each transform's output the way the sandbox
// agent does (a CommonJS module whose module.exports is the function) in
// the host's real node and calls it.
func TestOutputRunsInNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("SKIPPED LOUDLY: no node on PATH; cannot check transpiled output")
	}
	dir := t.TempDir()
	// A declared dependency, as an ES module import of a CommonJS package.
	if err := os.MkdirAll(filepath.Join(dir, "node_modules", "greet"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "node_modules", "greet", "index.js"), []byte(`module.exports = n => "hello " + n;`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ code, lang string }{
		"export-default": {"export default function (ctx, cb) { cb(null, 'hello ' + ctx.who) }", JavaScript},
		"import":         {"import greet from 'greet';\nexport default (ctx, cb) => cb(null, greet(ctx.who));", JavaScript},
		"use-latest":     {"\"use latest\";\nmodule.exports = async (ctx, cb) => cb(null, `hello ${ctx.who}`);", JavaScript},
		"typescript":     {"interface Ctx { who: string }\nexport default function (ctx: Ctx, cb: (e: Error | null, v?: string) => void): void {\n  cb(null, 'hello ' + ctx.who);\n}", TypeScript},
	} {
		out, err := Transform(c.code, c.lang)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		file := filepath.Join(dir, name+".js")
		if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		script := `const fn = require(process.argv[1]); if (typeof fn !== "function" || fn.length !== 2) throw new Error("not a 2-arity function: " + typeof fn);
fn({ who: "you" }, (err, v) => { if (err) throw err; process.stdout.write(v); });`
		got, err := exec.Command(node, "-e", script, file).CombinedOutput()
		if err != nil || string(got) != "hello you" {
			t.Errorf("%s: node said %q (%v), want \"hello you\"\n--- output ---\n%s", name, got, err, out)
		}
	}
}
