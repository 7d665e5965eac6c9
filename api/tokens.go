package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/token"
)

// sealAD is the associated data binding a token's sealed ectx: "{c}/{n}"
// for named webtasks (the store's binding too), else the ten claim.
func sealAD(c *token.Claims) []byte {
	if c.Jtn != "" {
		return []byte(c.Ten + "/" + c.Jtn)
	}
	return []byte(c.Ten)
}

// secretsOf unseals the ectx of verified claims (nil when none).
func (s *Server) secretsOf(c *token.Claims) (map[string]any, error) {
	if c.Ectx == "" {
		return nil, nil
	}
	plain, err := s.keys.Unseal(c.Ectx, c.Kid, sealAD(c))
	if err != nil {
		return nil, fmt.Errorf("unsealing token secrets: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(plain, &m); err != nil {
		return nil, fmt.Errorf("unsealed token secrets are not a JSON object")
	}
	return m, nil
}

// sign seals plain secrets into c.Ectx (ad from c) and signs c with the
// key set that sealed them, so the token's kid also opens its ectx.
func (s *Server) sign(c *token.Claims, plain map[string]any) (string, error) {
	c.Secrets, c.Ectx = nil, ""
	ks := s.keys.Current()
	if plain != nil {
		b, err := json.Marshal(plain)
		if err != nil {
			return "", errdefs.Errorf(errdefs.ErrInvalid, "the `ectx` claim is not JSON-encodable")
		}
		sealed, kid, err := s.keys.Seal(b, sealAD(c))
		if err != nil {
			return "", fmt.Errorf("sealing secrets: %w", err)
		}
		c.Ectx = sealed
		if ks, err = s.keys.Get(kid); err != nil {
			return "", fmt.Errorf("key set %s: %w", kid, err)
		}
	}
	return token.Sign(ks, c)
}

// issued is the outcome of an issue: the signed token and its claims.
type issued struct {
	raw    string
	claims *token.Claims
	// webtask is the stored webtask (named issues only).
	webtask *store.Webtask
}

// url is the webtask URL of an issued token under base: the named
// webtask's, else the first container's with ?key=<token> ("" when the
// token names no literal container).
func (o *issued) url(base string) string {
	if o.webtask != nil {
		return runURLAt(base, o.webtask.Container, o.webtask.Name)
	}
	if first := o.claims.FirstContainer(); first != "" {
		return runURLAt(base, first, "") + "?key=" + url.QueryEscape(o.raw)
	}
	return ""
}

// issue narrows req against the caller, seals, signs and stores: the
// webtask for a request naming one (jtn), the code blob for inline code
// without jtn (its url claim becomes webtask:///code/{sha256}). Nothing is
// stored on any error before the store write.
func (s *Server) issue(ctx context.Context, caller *token.Claims, req *token.IssueRequest) (*issued, error) {
	if caller != nil && bound(caller) && req.Has("jtn") {
		// Storing a webtask is management: a bound token's children
		// stay bound to its webtask.
		return nil, errBound
	}
	if err := s.keepStoredCode(ctx, caller, req); err != nil {
		return nil, err
	}
	child, err := token.Narrow(caller, req, s.now())
	if err != nil {
		return nil, err
	}
	named := req.Has("jtn")
	inlineCode := req.Has("code") && !named
	var container string
	if named {
		container, _ = child.SingleContainer() // Narrow guarantees one literal
		if req.Has("code") {
			child.URL = storedCodeURL(container, child.Jtn)
		}
	} else if inlineCode {
		child.URL = codeURL(store.CodeHash(req.Code))
	}
	if req.Has("code") {
		// Transpile now (once, cached by content): a syntax error is a 400
		// before anything is stored, and runs never transpile.
		if _, _, err := s.runnable(ctx, req.Code, store.CodeHash(req.Code), child.Meta); err != nil {
			return nil, err
		}
	}
	if err := s.checkDependencies(ctx, child.Meta); err != nil {
		return nil, err
	}
	if err := s.checkExtensions(child.Meta); err != nil {
		return nil, err
	}
	plain := child.Secrets
	if plain == nil && child.Ectx != "" {
		// Inherited sealed secrets: re-seal them for the child's binding.
		if plain, err = s.secretsOf(caller); err != nil {
			return nil, err
		}
	}
	raw, err := s.sign(child, plain)
	if err != nil {
		return nil, err
	}
	out := &issued{raw: raw, claims: child}
	if inlineCode {
		if _, err := s.codes.PutCode(ctx, req.Code); err != nil {
			return nil, fmt.Errorf("storing inline code: %w", err)
		}
	}
	if named {
		w := &store.Webtask{
			Container: container, Name: child.Jtn,
			Code: req.Code, CodeURL: child.URL,
			Meta: child.Meta, Params: child.Pctx, Secrets: plain,
			PB: child.Pb, MB: child.Mb, Token: raw,
		}
		if out.webtask, err = s.store.PutWebtask(ctx, w); err != nil {
			return nil, fmt.Errorf("storing webtask %s/%s: %w", container, child.Jtn, err)
		}
	}
	return out, nil
}

// keepStoredCode lets a named token be re-issued without `code` or `url`
// (sandboxjs 5.0.0 `webtask.update()` re-issues the inspected claims
// without code): the request then keeps the code of the stored webtask
// {ten}/{jtn}, as the hosted service did; everything else (secrets,
// params, meta, pb, mb) is what the request's claims say. Without a stored
// webtask the request is left alone (Narrow refuses it). Narrow then
// checks the caller as for any request carrying that code or url.
func (s *Server) keepStoredCode(ctx context.Context, caller *token.Claims, req *token.IssueRequest) error {
	if !req.Has("jtn") || req.Has("code") || req.Has("url") || (caller != nil && caller.URL != "") {
		return nil
	}
	ten := req.Ten
	if !req.Has("ten") && caller != nil {
		ten = caller.Ten
	}
	container, ok := (&token.Claims{Ten: ten}).SingleContainer()
	if !ok {
		return nil
	}
	w, err := s.store.GetWebtask(ctx, container, req.Jtn)
	if errors.Is(err, store.ErrWebtaskNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case hasStoredCode(w):
		req.Code, req.Set["code"] = w.Code, true
	case w.CodeURL != "":
		req.URL, req.Set["url"] = w.CodeURL, true
	}
	return nil
}

// issueToken is POST /api/tokens/issue: the body is the claims; the answer
// the raw JWT as text/plain with the webtask URL in Location.
func (s *Server) issueToken(c echo.Context) error {
	caller, _, err := s.caller(c)
	if err != nil {
		return err
	}
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	req, err := token.ParseIssueRequest(body)
	if err != nil {
		return err
	}
	out, err := s.issue(c.Request().Context(), caller, req)
	if err != nil {
		return err
	}
	if u := out.url(s.baseURL(c)); u != "" {
		c.Response().Header().Set(echo.HeaderLocation, u)
	}
	return c.Blob(http.StatusOK, echo.MIMETextPlainCharsetUTF8, []byte(out.raw))
}

// mayManage: the caller may inspect tok when it is master, is tok or an
// ancestor of it, or is authorized for every container tok names.
func mayManage(caller, tok *token.Claims) bool {
	if caller.Jti == tok.Jti || tok.IssuedBy(caller.Jti) {
		return true
	}
	if bound(caller) {
		return false // a webtask-bound token sees only itself and its children
	}
	if caller.IsMaster() {
		return true
	}
	if tok.Ten == "" || strings.HasPrefix(tok.Ten, "/") {
		return false
	}
	for _, c := range strings.Split(tok.Ten, ",") {
		if !caller.AllowsContainer(strings.TrimSpace(c)) {
			return false
		}
	}
	return true
}

// mayDecrypt: secrets are shown to master callers and to the token's
// issuers (their jti in its ca), never to callers that are themselves
// webtask tokens (with url or ectx).
func mayDecrypt(caller, tok *token.Claims) bool {
	if caller.URL != "" || caller.Ectx != "" {
		return false
	}
	return caller.IsMaster() || tok.IssuedBy(caller.Jti)
}

// inspectToken is GET /api/tokens/inspect?token=T[&decrypt][&fetch_code][&meta].
func (s *Server) inspectToken(c echo.Context) error {
	caller, _, err := s.caller(c)
	if err != nil {
		return err
	}
	raw := c.QueryParam("token")
	if raw == "" {
		return errdefs.Errorf(errdefs.ErrInvalid, "the token query parameter is required")
	}
	tok, err := s.verifier.Verify(raw, s.now())
	if err != nil {
		return err
	}
	if !mayManage(caller, tok) {
		return errdefs.Errorf(errdefs.ErrDenied, "not authorized to inspect this token")
	}
	decrypt := queryBool(c, "decrypt")
	if decrypt && !mayDecrypt(caller, tok) {
		return errdefs.Errorf(errdefs.ErrDenied, "not authorized to decrypt the secrets of this token")
	}
	b, err := json.Marshal(tok)
	if err != nil {
		return fmt.Errorf("encoding claims: %w", err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("decoding claims: %w", err)
	}
	if !queryBool(c, "meta") {
		delete(out, "meta")
	}
	if decrypt && tok.Ectx != "" {
		secrets, err := s.secretsOf(tok)
		if err != nil {
			return err
		}
		out["ectx"], out["secrets"] = secrets, secrets
	}
	if queryBool(c, "fetch_code") {
		if h, ok := parseCodeURL(tok.URL); ok && s.codes != nil {
			code, err := s.codes.GetCode(c.Request().Context(), h)
			if err != nil {
				return err
			}
			out["code"] = code
		} else if cn, n, ok := parseWebtaskURL(tok.URL); ok && caller.AllowsContainer(cn) {
			w, err := s.store.GetWebtask(c.Request().Context(), cn, n)
			if err != nil {
				return err
			}
			out["code"] = w.Code
		}
	}
	if cn, ok := tok.SingleContainer(); ok && tok.Jtn != "" {
		out["webtask_url"] = s.runURL(c, cn, tok.Jtn)
	}
	return c.JSON(http.StatusOK, out)
}

// storedCodeURL is the url claim of a named webtask whose code is stored
// with it.
func storedCodeURL(container, name string) string { return "webtask://" + container + "/" + name }

// parseWebtaskURL splits "webtask://{c}/{n}".
func parseWebtaskURL(u string) (container, name string, ok bool) {
	rest, ok := strings.CutPrefix(u, "webtask://")
	if !ok {
		return "", "", false
	}
	container, name, ok = strings.Cut(rest, "/")
	return container, name, ok && token.ValidName(container) && token.ValidName(name)
}

// codePrefix starts the url claim of inline code stored without a name:
// webtask:///code/{sha256 hex}. Its empty host keeps it apart from
// webtask://{container}/{name} (a container name is never empty), and
// like every webtask:// url only the server mints it.
const codePrefix = "webtask:///code/"

func codeURL(hash string) string { return codePrefix + hash }

// parseCodeURL returns the code hash of a webtask:///code/{sha256} url.
func parseCodeURL(u string) (hash string, ok bool) {
	hash, ok = strings.CutPrefix(u, codePrefix)
	if !ok || len(hash) != 64 || strings.Trim(hash, "0123456789abcdef") != "" {
		return "", false
	}
	return hash, true
}
