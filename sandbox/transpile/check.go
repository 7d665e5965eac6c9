package transpile

import (
	"unicode/utf16"

	"github.com/evanw/esbuild/pkg/api"
)

// MaxProblems bounds the problems Check reports.
const MaxProblems = 50

// Problem is one syntax error in source code.
type Problem struct {
	// Line is 1-based.
	Line int
	// Column is 1-based and counts UTF-16 code units, as browsers and
	// editors do (esbuild counts bytes).
	Column int
	// Message is esbuild's, which never quotes more than a token.
	Message string
}

// Check parses code in language with the transpiler of Transform (the
// same esbuild options) and returns its syntax errors, at most
// MaxProblems, none for valid code. It checks every code, plain CommonJS
// included (which Transform's callers pass through without a transform),
// so an editor sees what create/update and the runtime would refuse.
func Check(code, language string) []Problem {
	res := api.Transform(code, options(language))
	var out []Problem
	for _, m := range res.Errors {
		if len(out) == MaxProblems {
			break
		}
		p := Problem{Line: 1, Column: 1, Message: m.Text}
		if l := m.Location; l != nil {
			p.Line, p.Column = l.Line, utf16Column(l.LineText, l.Column)+1
		}
		out = append(out, p)
	}
	return out
}

// utf16Column converts a 0-based byte column of line to UTF-16 code units.
func utf16Column(line string, byteCol int) int {
	if byteCol > len(line) {
		byteCol = len(line)
	}
	n := 0
	for _, r := range line[:byteCol] {
		n += max(utf16.RuneLen(r), 1)
	}
	return n
}
