package api

import (
	"context"
	"strings"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/sandbox/agent"
	"github.com/webtaskd/webtaskd/store/token"
)

var errNoAuthority = errdefs.New(errdefs.ErrDenied, "this webtask runs without a token to issue from")

// CreateToken serves the runtime's ctx.create_token(_url) calls
// (agent.TokenHandler): the invocation's own token (op.Authority: the
// stored token of a named webtask, the caller's for an unnamed run) is
// verified again (revoked or expired parents issue nothing) and then
// issues op.Claims exactly as POST /api/tokens/issue would, with the same
// narrowing (token.Narrow), so a webtask never mints a token wider than
// its own. Errors carry the API's status and message (tokenResult in
// errors.go).
func (s *Server) CreateToken(ctx context.Context, op agent.TokenOp) agent.TokenResult {
	if op.Refused != nil {
		return s.tokenResult(op, op.Refused)
	}
	if op.Authority == "" {
		return s.tokenResult(op, errNoAuthority)
	}
	parent, err := s.verifier.Verify(op.Authority, s.now())
	if err != nil {
		return s.tokenResult(op, err)
	}

	req, err := token.ParseIssueRequest(op.Claims)
	if err != nil {
		return s.tokenResult(op, err)
	}
	out, err := s.issue(ctx, parent, req)
	if err != nil {
		return s.tokenResult(op, err)
	}
	res := agent.TokenResult{Token: out.raw}
	if op.URL {
		res.URL = out.url(s.baseURLOf(op.Headers))
	}
	s.log.Info("webtask created a token", "req_id", op.ReqID, "container", op.Container, "name", op.Name,
		"parent_jti", parent.Jti, "jti", out.claims.Jti)
	return res
}

// baseURLOf is baseURL for a running invocation: the public URL, else the
// scheme and host the caller used (echo's Context.Scheme rules over the
// invocation's lower-cased request headers; the daemon serves no TLS).
func (s *Server) baseURLOf(h map[string][]string) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	first := func(k string) string {
		if v := h[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	scheme := "http"
	switch {
	case first("x-forwarded-proto") != "":
		scheme = first("x-forwarded-proto")
	case first("x-forwarded-protocol") != "":
		scheme = first("x-forwarded-protocol")
	case strings.EqualFold(first("x-forwarded-ssl"), "on"):
		scheme = "https"
	case first("x-url-scheme") != "":
		scheme = first("x-url-scheme")
	}
	return scheme + "://" + first("host")
}
