// Package transpile turns modern webtask source (ES module syntax, "use
// latest" code, TypeScript) into the CommonJS the sandbox runtime loads,
// with the esbuild Go API (Transform to CommonJS, target node18). It is
// called at create/update time and its results are cached by content hash
// by the caller: it is never on the warm path. Plain CommonJS JavaScript
// is passed through untouched (same bytes, same line numbers).
package transpile

import (
	"regexp"
	"strings"

	"github.com/evanw/esbuild/pkg/api"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// The languages of meta wt-language.
const (
	JavaScript = "javascript"
	TypeScript = "typescript"
)

// MetaLanguage is the meta key naming the source language (default
// JavaScript).
const MetaLanguage = "wt-language"

// target is the Node version transpiled output must run on.
const target = "18"

// unwrapDefault makes an ES module's default export the CommonJS export the
// runtime looks for (module.exports itself must be the webtask function).
const unwrapDefault = `if (module.exports && module.exports.__esModule && typeof module.exports.default === "function") module.exports = module.exports.default;`

// esmSyntax matches a line starting with an import or export declaration
// (not a dynamic import(), not import.meta).
var esmSyntax = regexp.MustCompile(`(?m)^[ \t]*(?:import[ \t]*[\w$*{"']|export[ \t]*(?:default\b|const\b|let\b|var\b|function\b|async\b|class\b|[{*]))`)

// Language returns the language meta asks for: JavaScript when unset, an
// ErrInvalid error for an unknown one.
func Language(meta map[string]string) (string, error) {
	switch l := strings.ToLower(strings.TrimSpace(meta[MetaLanguage])); l {
	case "", JavaScript:
		return JavaScript, nil
	case TypeScript:
		return TypeScript, nil
	default:
		return "", errdefs.Errorf(errdefs.ErrInvalid, "meta %s must be javascript or typescript", MetaLanguage)
	}
}

// Needed reports whether code in language needs a transform: TypeScript
// always, JavaScript when it uses ES module declarations or the "use
// latest" directive.
func Needed(code, language string) bool {
	if language == TypeScript {
		return true
	}
	return strings.Contains(code, `"use latest"`) || strings.Contains(code, `'use latest'`) || esmSyntax.MatchString(code)
}

// Transform returns code as CommonJS for Node 18. A syntax error is an
// ErrInvalid error naming its line and column (1-based) and never quotes
// more than esbuild's message.
func Transform(code, language string) (string, error) {
	res := api.Transform(code, options(language))
	if len(res.Errors) > 0 {
		m := res.Errors[0]
		if m.Location != nil {
			return "", errdefs.Errorf(errdefs.ErrInvalid, "Unable to compile submitted %s: SyntaxError: %s (line %d, column %d)",
				languageName(language), m.Text, m.Location.Line, m.Location.Column+1)
		}
		return "", errdefs.Errorf(errdefs.ErrInvalid, "Unable to compile submitted %s: %s", languageName(language), m.Text)
	}
	return string(res.Code), nil
}

// options are the esbuild options of Transform (and Check) for language.
func options(language string) api.TransformOptions {
	loader := api.LoaderJS
	file := "webtask.js"
	if language == TypeScript {
		loader, file = api.LoaderTS, "webtask.ts"
	}
	return api.TransformOptions{
		Loader:     loader,
		Format:     api.FormatCommonJS,
		Platform:   api.PlatformNode,
		Engines:    []api.Engine{{Name: api.EngineNode, Version: target}},
		Sourcefile: file,
		Footer:     unwrapDefault,
		LogLevel:   api.LogLevelSilent,
	}
}

func languageName(language string) string {
	if language == TypeScript {
		return "TypeScript"
	}
	return "JavaScript"
}
