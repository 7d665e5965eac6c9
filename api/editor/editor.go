// Package editor serves the Extension Editor: the page GET /edit/{container}
// (what `wt edit` opens), its bundle (CodeMirror 6 and the editor, built by
// scripts/editorbuild from web/ into dist/, embedded) under
// /editor/assets/ by content hash, and the embedding library
// GET /editor/embed.js. The editor is a client of the public HTTP API: it
// calls it with the token the user or the embedding page gives it, so a
// tenant token sees exactly its own container. Nothing here authenticates:
// the page and the bundle hold no data.
package editor

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// Config configures the editor routes.
type Config struct {
	// FrameAncestors are the sources allowed to frame the editor, sent as
	// CSP frame-ancestors (origins such as https://app.example, or 'self').
	// Empty allows any origin ("*"): the token the embedding page passes is
	// what grants access, and the editor uses no cookies.
	FrameAncestors []string
}

// ValidateFrameAncestors checks CSP frame-ancestors sources: no separators
// or spaces that would end the directive, no quotes but 'self' and 'none'.
func ValidateFrameAncestors(srcs []string) error {
	for _, s := range srcs {
		switch {
		case s == "":
			return fmt.Errorf("editor frame ancestor must not be empty")
		case s == "'self'" || s == "'none'" || s == "*":
		case strings.ContainsAny(s, " \t\r\n;,'\""):
			return fmt.Errorf("editor frame ancestor %q is not a CSP source (an origin such as https://app.example, or 'self')", s)
		}
	}
	return nil
}

// Handler serves the editor.
type Handler struct {
	b *bundle
	// csp is the page's policy up to its style nonce; cspTail follows it.
	csp, cspTail string
}

// New builds the handler. The bundle is read and compressed once per
// process.
func New(cfg Config) (*Handler, error) {
	if err := ValidateFrameAncestors(cfg.FrameAncestors); err != nil {
		return nil, err
	}
	b, err := load()
	if err != nil {
		return nil, err
	}
	ancestors := "*"
	if len(cfg.FrameAncestors) > 0 {
		ancestors = strings.Join(cfg.FrameAncestors, " ")
	}
	// No inline script, no eval; styles from the bundle, plus CodeMirror's
	// generated <style> elements carrying the response's nonce. The page
	// talks to its own origin only. frame-src is for the sandboxed preview
	// of HTML responses.
	return &Handler{b: b,
		csp: "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-",
		cspTail: "'; img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-src 'self'; " +
			"base-uri 'none'; form-action 'none'; frame-ancestors " + ancestors,
	}, nil
}

// Register adds the editor routes to e.
func (h *Handler) Register(e *echo.Echo) {
	e.GET("/edit/:container", h.servePage)
	e.GET("/editor/assets/:file", h.serveAsset)
	e.GET("/editor/embed.js", func(c echo.Context) error {
		// A stable URL platforms load: revalidated, not cached for long.
		return serve(c, h.b.embedJS, "no-cache")
	})
	e.GET("/editor/LICENSES.txt", func(c echo.Context) error {
		return serve(c, h.b.licenses, "no-cache")
	})
}

func (h *Handler) servePage(c echo.Context) error {
	var n [16]byte
	if _, err := rand.Read(n[:]); err != nil {
		return fmt.Errorf("editor: nonce: %w", err)
	}
	nonce := base64.StdEncoding.EncodeToString(n[:])
	hd := c.Response().Header()
	hd.Set("Content-Security-Policy", h.csp+nonce+h.cspTail)
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	return c.HTMLBlob(http.StatusOK, page(h.b.appJS, h.b.appCSS, nonce))
}

func (h *Handler) serveAsset(c echo.Context) error {
	a := h.b.hashed[c.Param("file")]
	if a == nil {
		return errdefs.New(errdefs.ErrNotFound, "no such editor asset")
	}
	return serve(c, a, "public, max-age=31536000, immutable")
}

// serve writes a, brotli- or gzip-compressed when the client accepts it
// (the encoding it prefers; brotli on a tie), with an ETag per encoding.
func serve(c echo.Context, a *asset, cache string) error {
	hd := c.Response().Header()
	hd.Set("Content-Type", a.ctype)
	hd.Set("Cache-Control", cache)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Add("Vary", "Accept-Encoding")
	body, coding := a.body, ""
	ae := c.Request().Header.Get("Accept-Encoding")
	qbr, qgz := acceptQ(ae, "br"), acceptQ(ae, "gzip")
	switch {
	case a.br != nil && qbr > 0 && (qbr >= qgz || a.gz == nil):
		body, coding = a.br, "br"
	case a.gz != nil && qgz > 0:
		body, coding = a.gz, "gzip"
	}
	etag := `"` + a.etag + `"`
	if coding != "" {
		hd.Set("Content-Encoding", coding)
		etag = `"` + a.etag + "-" + coding + `"`
	}
	hd.Set("ETag", etag)
	if inm := c.Request().Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, etag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, a.ctype, body)
}

// acceptQ is the q-value an Accept-Encoding value gives coding (named, or
// "*" when it is not named): 0 when refused or absent, 1 without a q.
func acceptQ(ae, coding string) float64 {
	star := 0.0
	for _, part := range strings.Split(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.TrimSpace(name)
		if !strings.EqualFold(name, coding) && name != "*" {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(k, "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f >= 0 && f <= 1 {
					q = f
				} else {
					q = 0
				}
			}
		}
		if name != "*" {
			return q
		}
		star = q
	}
	return star
}
