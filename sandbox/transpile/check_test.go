package transpile

import "testing"

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name, code, lang string
		want             []Problem // messages compared by non-emptiness
	}{
		{"valid CommonJS", "module.exports = function (ctx, cb) { cb(null, 1); };\n", JavaScript, nil},
		{"top-level return (the runtime's module wrapper allows it)", "return function (ctx, cb) { cb(null, 1); };", JavaScript, nil},
		{"valid TypeScript", "export default (ctx: any, cb: any) => cb(null, 1);\n", TypeScript, nil},
		{"syntax error", "module.exports = function (ctx, cb) {\n  cb(null, ;\n};\n", JavaScript, []Problem{{Line: 2, Column: 12}}},
		{"columns count UTF-16 units, not bytes", "const s = 'é😀'; foo(;", JavaScript, []Problem{{Line: 1, Column: 22}}},
		{"types are not JavaScript", "const a: number = 1;", JavaScript, []Problem{{Line: 1, Column: 8}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Check(tc.code, tc.lang)
			if len(got) != len(tc.want) {
				t.Fatalf("Check = %+v, want %d problems", got, len(tc.want))
			}
			for i, w := range tc.want {
				if got[i].Line != w.Line || got[i].Column != w.Column || got[i].Message == "" {
					t.Errorf("problem %d = %+v, want line %d column %d with a message", i, got[i], w.Line, w.Column)
				}
			}
		})
	}
}
