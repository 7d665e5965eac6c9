package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/httplimit"
	"github.com/webtaskd/webtaskd/store/token"
)

// credential extracts the caller's token: "Authorization: Bearer x", else
// the key query parameter (§1.0).
func credential(c echo.Context) (string, error) {
	if h := c.Request().Header.Get(echo.HeaderAuthorization); h != "" {
		scheme, raw, ok := strings.Cut(h, " ")
		raw = strings.TrimSpace(raw)
		if !ok || !strings.EqualFold(scheme, "Bearer") || raw == "" {
			return "", errdefs.Errorf(errdefs.ErrDenied, msgUnexpectedAuth)
		}
		return raw, nil
	}
	if k := c.QueryParam("key"); k != "" {
		return k, nil
	}
	return "", errdefs.Errorf(errdefs.ErrDenied, msgNoAuth)
}

// caller authenticates the request and returns the caller's claims.
func (s *Server) caller(c echo.Context) (*token.Claims, string, error) {
	raw, err := credential(c)
	if err != nil {
		return nil, "", err
	}
	claims, err := s.verifier.Verify(raw, s.now())
	if err != nil {
		return nil, "", err
	}
	// Token rate limits (lts…lto) count every request the token authorizes.
	c.Set(ctxCaller, claims) // the audit log's token id
	if err := s.limitToken(claims); err != nil {
		return nil, "", err
	}
	return claims, raw, nil
}

// authorize checks that claims may act on container.
func authorize(claims *token.Claims, container string) error {
	if !claims.AllowsContainer(container) {
		return errForeignTenant(container)
	}
	return nil
}

func requireMaster(claims *token.Claims) error {
	if !claims.IsMaster() || bound(claims) {
		return errdefs.Errorf(errdefs.ErrDenied, msgAdminOnly)
	}
	return nil
}

// master authenticates a master-token caller (requireMaster).
func (s *Server) master(c echo.Context) error {
	caller, _, err := s.caller(c)
	if err != nil {
		return err
	}
	return requireMaster(caller)
}

// pathName returns the validated, unescaped path parameter p.
func pathName(c echo.Context, p, what string) (string, error) {
	v := c.Param(p)
	if strings.IndexByte(v, '%') >= 0 {
		u, err := url.PathUnescape(v)
		if err != nil {
			return "", errdefs.Errorf(errdefs.ErrInvalid, "invalid %s name", what)
		}
		v = u
	}
	if !token.ValidName(v) {
		return "", errdefs.Errorf(errdefs.ErrInvalid, "invalid %s name", what)
	}
	return v, nil
}

// errBound refuses a webtask-bound token on a management route.
var errBound = errdefs.New(errdefs.ErrDenied, "a token bound to one webtask may only run it, use its storage, issue narrower tokens and revoke itself")

// bound reports whether a token is bound to one webtask (its jtn or url
// claim): such a token (ctx.token, a stored webtask's token) may run that
// webtask, use that webtask's storage, issue narrower tokens (bound as
// well) and revoke itself where dr allows; every management route
// refuses it.
func bound(c *token.Claims) bool { return c.Jtn != "" || c.URL != "" }

// boundTo reports whether a bound token is bound to webtask container/name:
// its jtn in its one container, or a url claim naming that webtask.
func boundTo(c *token.Claims, container, name string) bool {
	if c.Jtn != "" {
		one, ok := c.SingleContainer()
		return ok && one == container && c.Jtn == name
	}
	cn, n, ok := parseWebtaskURL(c.URL)
	return ok && cn == container && n == name
}

// containerParam authenticates the caller of a management route and checks
// access to the :container path parameter (webtask-bound tokens are
// refused).
func (s *Server) containerParam(c echo.Context) (*token.Claims, string, error) {
	claims, container, err := s.anyContainerParam(c)
	if err != nil {
		return nil, "", err
	}
	if bound(claims) {
		return nil, "", errBound
	}
	return claims, container, nil
}

// anyContainerParam is containerParam that lets webtask-bound tokens
// through (their routes check the webtask themselves).
func (s *Server) anyContainerParam(c echo.Context) (*token.Claims, string, error) {
	claims, _, err := s.caller(c)
	if err != nil {
		return nil, "", err
	}
	container, err := pathName(c, "container", "container")
	if err != nil {
		return nil, "", err
	}
	if err := authorize(claims, container); err != nil {
		return nil, "", err
	}
	return claims, container, nil
}

// webtaskParams is containerParam plus the {name} of a webtask route.
func (s *Server) webtaskParams(c echo.Context) (*token.Claims, string, string, error) {
	claims, container, err := s.containerParam(c)
	if err != nil {
		return nil, "", "", err
	}
	name, err := pathName(c, "name", "webtask")
	if err != nil {
		return nil, "", "", err
	}
	return claims, container, name, nil
}

// readBody reads the request body up to Config.MaxBodyBytes, incrementally
// (never allocating by the announced Content-Length) and within the
// in-flight body budget (httplimit.ReadBody); more is errdefs.ErrTooLarge,
// a spent budget errdefs.ErrUnavailable, a body the client did not send
// (read deadline, abort, malformed chunking) errdefs.ErrInvalid, logged at
// debug. An absent body is nil.
func (s *Server) readBody(c echo.Context) ([]byte, error) {
	b, err := httplimit.ReadBody(c.Request(), s.cfg.MaxBodyBytes, s.bodyAccount(c))
	s.logUnreadable(c, err)
	return b, err
}

// bodyAccount is the request's share of the in-flight body budget
// (released by admit).
func (s *Server) bodyAccount(c echo.Context) *httplimit.Body {
	acct, _ := c.Get(ctxBody).(*httplimit.Body)
	if acct == nil {
		acct = s.cfg.Guard.NewBody()
		c.Set(ctxBody, acct)
	}
	return acct
}

// logUnreadable logs, at debug, a body the client did not send.
func (s *Server) logUnreadable(c echo.Context, err error) {
	if errors.Is(err, httplimit.ErrUnreadable) {
		s.log.Debug("request body not received", "req_id", reqID(c), "err", err)
	}
}

// bindJSON reads the request body (readBody) and decodes it strictly
// (decodeJSON) into v.
func (s *Server) bindJSON(c echo.Context, v any) error {
	raw, err := s.readBody(c)
	if err != nil {
		return err
	}
	return decodeJSON(raw, v)
}

// decodeJSON strictly decodes a JSON object body into v: unknown fields,
// wrong types and trailing data are errdefs.ErrInvalid. Messages never quote
// values (encoding/json errors name types and fields only).
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errdefs.Errorf(errdefs.ErrInvalid, "the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errdefs.Errorf(errdefs.ErrInvalid, "invalid JSON body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return errdefs.Errorf(errdefs.ErrInvalid, "invalid JSON body: trailing data")
	}
	return nil
}

// queryBool accepts the booleans clients send: 1 and true.
func queryBool(c echo.Context, name string) bool {
	v := c.QueryParam(name)
	return v == "1" || strings.EqualFold(v, "true")
}
