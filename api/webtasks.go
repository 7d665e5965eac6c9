package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/token"
)

// maxListLimit caps list pages (reference: default and maximum 100).
const maxListLimit = 100

// webtaskJSON is w's wire shape (without secrets and code).
func (s *Server) webtaskJSON(c echo.Context, w *store.Webtask) types.Webtask {
	meta := w.Meta
	if meta == nil {
		meta = map[string]string{}
	}
	return types.Webtask{
		Container: w.Container, Name: w.Name, Token: w.Token, Meta: meta,
		WebtaskURL: s.runURL(c, w.Container, w.Name),
	}
}

// putWebtaskBody is the PUT /api/webtask/{c}/{n} body.
type putWebtaskBody struct {
	Code    *string           `json:"code"`
	URL     *string           `json:"url"`
	Secrets map[string]any    `json:"secrets"`
	Meta    map[string]string `json:"meta"`
	Host    *string           `json:"host"`
}

// putWebtask upserts a named webtask (v2 create): the webtask gets a fresh
// token issued from the caller's, like POST /api/tokens/issue with jtn.
func (s *Server) putWebtask(c echo.Context) error {
	caller, container, name, err := s.webtaskParams(c)
	if err != nil {
		return err
	}
	var body putWebtaskBody
	if err := s.bindJSON(c, &body); err != nil {
		return err
	}
	if (body.Code == nil) == (body.URL == nil) {
		return errdefs.Errorf(errdefs.ErrInvalid, "exactly one of `code` and `url` is required")
	}
	req := &token.IssueRequest{
		Ten: container, Jtn: name, Dd: 0, Dr: 1, Mb: 1,
		Ectx: body.Secrets, Meta: body.Meta,
		Set: map[string]bool{"ten": true, "jtn": true, "dd": true, "dr": true, "mb": true},
	}
	switch {
	case body.Code != nil: // empty code is valid code (it fails when run)
		req.Code, req.Set["code"] = *body.Code, true
	default:
		u := *body.URL
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return errdefs.Errorf(errdefs.ErrInvalid, "the `url` field must be an http or https URL")
		}
		req.URL, req.Set["url"] = u, true
	}
	if body.Secrets != nil {
		req.Set["ectx"] = true
	} else if err := s.keepSecrets(c, caller, container, name, req); err != nil {
		return err
	}
	if body.Meta != nil {
		req.Set["meta"] = true
	}
	if body.Host != nil {
		req.Host, req.Set["host"] = *body.Host, true
	}
	out, err := s.issue(c.Request().Context(), caller, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.webtaskJSON(c, out.webtask))
}

// getWebtask is GET /api/webtask/{c}/{n}[?decrypt=true&fetch_code=true].
func (s *Server) getWebtask(c echo.Context) error {
	caller, container, name, err := s.webtaskParams(c)
	if err != nil {
		return err
	}
	w, err := s.store.GetWebtask(c.Request().Context(), container, name)
	if err != nil {
		return err
	}
	out := s.webtaskJSON(c, w)
	if queryBool(c, "decrypt") {
		tok, _, err := token.ParseUnverified(w.Token)
		if err != nil || !mayDecrypt(caller, tok) {
			return errdefs.Errorf(errdefs.ErrDenied, "not authorized to decrypt the secrets of this webtask")
		}
		out.Secrets = w.Secrets
		if out.Secrets == nil {
			out.Secrets = map[string]any{}
		}
	}
	if queryBool(c, "fetch_code") && w.Code != "" {
		code := w.Code
		out.Code = &code
	}
	return c.JSON(http.StatusOK, out)
}

// deleteWebtask is DELETE /api/webtask/{c}/{n}: 204, or 404.
func (s *Server) deleteWebtask(c echo.Context) error {
	_, container, name, err := s.webtaskParams(c)
	if err != nil {
		return err
	}
	if err := s.store.DeleteWebtask(c.Request().Context(), container, name); err != nil {
		return err
	}
	if s.cron != nil {
		// The store deleted its cron job with it (cascade); stop its clock.
		s.cron.Remove(container, name)
	}
	return c.NoContent(http.StatusNoContent)
}

// listWebtasks is GET /api/webtask/{c}?offset=&limit=&meta=k:v...
func (s *Server) listWebtasks(c echo.Context) error {
	_, container, err := s.containerParam(c)
	if err != nil {
		return err
	}
	return s.list(c, container)
}

// listAllWebtasks is GET /api/webtask (master only): every container.
func (s *Server) listAllWebtasks(c echo.Context) error {
	if err := s.master(c); err != nil {
		return err
	}
	return s.list(c, "")
}

func (s *Server) list(c echo.Context, container string) error {
	q, err := parseListQuery(c)
	if err != nil {
		return err
	}
	if q.Empty {
		return c.JSON(http.StatusOK, []types.Webtask{})
	}
	opts := store.ListOptions{Container: container, Offset: q.Offset, Limit: q.Limit, Meta: q.Meta}
	ws, err := s.store.ListWebtasks(c.Request().Context(), opts)
	if err != nil {
		return err
	}
	fetch := queryBool(c, "fetch_code")
	out := make([]types.Webtask, 0, len(ws))
	for _, w := range ws {
		item := s.webtaskJSON(c, w)
		if fetch && w.Code != "" {
			code := w.Code
			item.Code = &code
		}
		out = append(out, item)
	}
	return c.JSON(http.StatusOK, out)
}
