package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox/transpile"
)

// checkSyntax is POST /api/syntax/{container}: the syntax errors of code
// as create/update would see them (the same transpiler, sandbox/transpile),
// for the editor's underlines. Any token that may manage the container may
// ask (not a token bound to one webtask); the body is bounded like a
// create's. Nothing is stored, compiled for a run or logged. Code behind a
// custom wt-compiler is that compiler's language: it is not checked.
func (s *Server) checkSyntax(c echo.Context) error {
	if _, _, err := s.containerParam(c); err != nil {
		return err
	}
	var body types.SyntaxRequest
	if err := s.bindJSON(c, &body); err != nil {
		return err
	}
	out := types.SyntaxResult{Errors: []types.SyntaxError{}}
	if comp := strings.TrimSpace(body.Meta[MetaCompiler]); comp != "" && comp != middlewareCompiler {
		return c.JSON(http.StatusOK, out)
	}
	lang, err := transpile.Language(body.Meta)
	if err != nil {
		return err
	}
	out.Language = lang
	for _, p := range transpile.Check(body.Code, lang) {
		out.Errors = append(out.Errors, types.SyntaxError{Line: p.Line, Column: p.Column, Message: p.Message})
	}
	return c.JSON(http.StatusOK, out)
}
