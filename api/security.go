package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/keyring"
	"github.com/webtaskd/webtaskd/store/token"
)

// SecurityStore persists revocations and re-seals secrets when a key set
// is retired (*store.Store).
type SecurityStore interface {
	// Revoke records jti as revoked, durably and with immediate effect.
	Revoke(ctx context.Context, jti, by string) error
	// AnyRevoked is the per-request revocation check (memory only).
	AnyRevoked(jtis []string) (bool, error)
	// ResealSecrets re-seals under the current key the secrets sealed with kid.
	ResealSecrets(ctx context.Context, kid string) (int, error)
	// CountSealedWith counts the webtasks whose secrets kid still seals.
	CountSealedWith(ctx context.Context, kid string) (int, error)
	// WebtaskTokens lists the stored token of every webtask.
	WebtaskTokens(ctx context.Context) ([]store.WebtaskToken, error)
	// ReplaceToken swaps a webtask's stored token (compare and swap).
	ReplaceToken(ctx context.Context, container, name, old, new string) error
}

// KeyAdmin rotates and retires key sets (*keyring.Ring).
type KeyAdmin interface {
	List() []types.KeyInfo
	Rotate() (*keyring.KeySet, error)
	Retire(kid string) error
}

// storedClaimsMax bounds the cache of verified stored-token claims.
const storedClaimsMax = 4096

// claimsCache maps a stored webtask token to its claims, whose signature
// was verified once. Everything that can change after signing (key
// retirement, nbf/exp, revocation) is re-checked on every use
// (token.Verifier.Check). A re-signed or replaced token is a new string,
// hence a new entry.
type claimsCache struct {
	mu sync.Mutex
	m  map[string]*token.Claims
}

func (s *Server) storedClaims(raw string) (*token.Claims, error) {
	s.stored.mu.Lock()
	c, ok := s.stored.m[raw]
	s.stored.mu.Unlock()
	if ok {
		return c, nil
	}
	c, err := token.VerifySignature(s.keys, raw)
	if err != nil {
		return nil, err
	}
	s.stored.mu.Lock()
	if s.stored.m == nil || len(s.stored.m) >= storedClaimsMax {
		s.stored.m = make(map[string]*token.Claims)
	}
	s.stored.m[raw] = c
	s.stored.mu.Unlock()
	return c, nil
}

// checkStoredToken authorizes a named run with the webtask's own token:
// its key set is live, it is within nbf/exp, neither it nor an ancestor is
// revoked, and the container and token rate limits allow one more run.
// Revoking a webtask's token (or any ancestor) therefore stops its runs.
func (s *Server) checkStoredToken(w *store.Webtask) error {
	if w.Token == "" {
		return errdefs.Errorf(errdefs.ErrDenied, "the webtask has no token")
	}
	c, err := s.storedClaims(w.Token)
	if err != nil {
		return err
	}
	if err := s.verifier.Check(c, s.now()); err != nil {
		return err
	}
	return s.limitRun(c, w.Container, true)
}

// revokeToken is POST /api/tokens/revoke?token=T (T may also be sent as a
// JSON {"token": T} or form body). The caller may revoke T when it is a
// master token, an ancestor of T (its jti in T's ca), or T itself unless T
// has dr:1. Revocation is permanent and recursive: every token whose ca
// holds T's jti is refused from the next request on.
func (s *Server) revokeToken(c echo.Context) error {
	caller, _, err := s.caller(c)
	if err != nil {
		return err
	}
	raw := c.QueryParam("token")
	if raw == "" {
		body, err := s.readBody(c)
		if err != nil {
			return err
		}
		raw = tokenFromBody(c.Request().Header.Get(echo.HeaderContentType), body)
	}
	if raw == "" {
		return errdefs.Errorf(errdefs.ErrInvalid, "the token to revoke is required (token query parameter or body)")
	}
	tok, err := token.VerifySignature(s.keys, raw)
	if err != nil {
		return errdefs.Errorf(errdefs.ErrInvalid, "the token to revoke is malformed or not signed by a live key of this server")
	}
	switch {
	case caller.IsMaster(), tok.IssuedBy(caller.Jti):
	case caller.Jti == tok.Jti && tok.Dr != 1:
	case caller.Jti == tok.Jti:
		return errdefs.Errorf(errdefs.ErrDenied, "the token may not revoke itself (dr:1)")
	default:
		return errdefs.Errorf(errdefs.ErrDenied, "insufficient permissions to revoke this token: only the token itself, its ancestors and master tokens may")
	}
	c.Set(ctxAuditTarget, "jti "+tok.Jti)
	if err := s.security.Revoke(c.Request().Context(), tok.Jti, caller.Jti); err != nil {
		return err
	}
	s.log.Info("token revoked", "req_id", reqID(c), "jti", tok.Jti, "by", caller.Jti)
	s.refreshMaster()
	return c.JSON(http.StatusOK, map[string]any{"jti": tok.Jti, "revoked": true})
}

// tokenFromBody reads the token of a revoke request body: JSON
// {"token": T}, form token=T, or the raw JWT.
func tokenFromBody(contentType string, body []byte) string {
	b := strings.TrimSpace(string(body))
	if b == "" {
		return ""
	}
	switch {
	case strings.HasPrefix(contentType, echo.MIMEApplicationJSON):
		var v struct {
			Token string `json:"token"`
		}
		if json.Unmarshal(body, &v) == nil {
			return strings.TrimSpace(v.Token)
		}
		return ""
	case strings.HasPrefix(contentType, echo.MIMEApplicationForm):
		q, err := url.ParseQuery(b)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(q.Get("token"))
	default:
		if strings.Count(b, ".") == 2 && !strings.ContainsAny(b, " \n{") {
			return b
		}
		return ""
	}
}

// refreshMaster lets the daemon re-check its master token after a
// revocation or a retirement (and mint a new one when it no longer
// verifies).
func (s *Server) refreshMaster() {
	if s.onKeysChanged == nil {
		return
	}
	if err := s.onKeysChanged(); err != nil {
		s.log.Error("refreshing the master token failed", "err", err)
	}
}

// listKeys is GET /api/admin/keys (master only).
func (s *Server) listKeys(c echo.Context) error {
	if err := s.master(c); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.keyAdmin.List())
}

// rotateKeys is POST /api/admin/keys/rotate (master only): a new key set
// (signing and sealing key) becomes current. Older key sets keep
// verifying tokens and opening secrets until retired.
func (s *Server) rotateKeys(c echo.Context) error {
	if err := s.master(c); err != nil {
		return err
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	ks, err := s.keyAdmin.Rotate()
	if err != nil {
		return err
	}
	s.log.Info("key sets rotated", "req_id", reqID(c), "kid", ks.ID)
	return c.JSON(http.StatusOK, types.KeyInfo{ID: ks.ID, CreatedAt: ks.CreatedAt, Current: true})
}

// retireKey is POST /api/admin/keys/{kid}/retire (master only). Before the
// key set is retired, every stored webtask token it signed is re-signed
// with the current key set (same claims and jti, ectx re-sealed) and every
// secret it sealed is re-sealed under the current key, so nothing stored
// becomes unreadable. Tokens held by clients and signed by kid are refused
// from then on (403 untrusted key).
func (s *Server) retireKey(c echo.Context) error {
	if err := s.master(c); err != nil {
		return err
	}
	kid := c.Param("kid")
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if !s.keyKnown(kid) {
		return errdefs.Errorf(errdefs.ErrNotFound, "no key set with id %q", kid)
	}
	if kid == s.keys.Current().ID {
		return errdefs.Errorf(errdefs.ErrConflict, "cannot retire the current key set: rotate first")
	}
	ctx := c.Request().Context()
	out := types.KeyRetirement{Kid: kid}
	resigned, err := s.resignStoredTokens(ctx, kid)
	out.Resigned = resigned
	if err != nil {
		return err
	}
	if out.Resealed, err = s.security.ResealSecrets(ctx, kid); err != nil {
		return err
	}
	// A write that raced the passes above would leave something behind:
	// refuse to retire then (nothing is lost; retry).
	if left, err := s.security.CountSealedWith(ctx, kid); err != nil {
		return err
	} else if left > 0 {
		return errdefs.Errorf(errdefs.ErrConflict, "%d webtasks still hold secrets sealed with %s; retry", left, kid)
	}
	if err := s.keyAdmin.Retire(kid); err != nil {
		return err // keyring.ErrRetireCurrent is a 409
	}
	out.Retired = true
	s.log.Info("key set retired", "req_id", reqID(c), "kid", kid, "resealed", out.Resealed, "resigned", out.Resigned)
	s.refreshMaster()
	return c.JSON(http.StatusOK, out)
}

func (s *Server) keyKnown(kid string) bool {
	for _, k := range s.keyAdmin.List() {
		if k.ID == kid && !k.Retired {
			return true
		}
	}
	return false
}

// resignStoredTokens re-signs with the current key set every stored
// webtask token signed with kid: same claims (jti, iat, ca, exp, ...), the
// ectx unsealed with kid and re-sealed under the current key.
func (s *Server) resignStoredTokens(ctx context.Context, kid string) (int, error) {
	toks, err := s.security.WebtaskTokens(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, wt := range toks {
		_, hdr, err := token.ParseUnverified(wt.Token)
		if err != nil || hdr["kid"] != kid {
			continue
		}
		claims, err := token.VerifySignature(s.keys, wt.Token)
		if err != nil {
			// A stored token that does not verify is not ours to vouch for.
			s.log.Warn("stored webtask token does not verify; left as is", "container", wt.Container, "name", wt.Name, "err", err)
			continue
		}
		plain, err := s.secretsOf(claims)
		if err != nil {
			return n, err
		}
		raw, err := s.sign(claims, plain)
		if err != nil {
			return n, err
		}
		switch err := s.security.ReplaceToken(ctx, wt.Container, wt.Name, wt.Token, raw); {
		case err == nil:
			n++
		case errors.Is(err, store.ErrTokenChanged), errors.Is(err, store.ErrNotFound):
			// Replaced or deleted meanwhile: the new token uses the current key.
		default:
			return n, err
		}
	}
	return n, nil
}

// keepSecrets implements "an update without secrets keeps them" for PUT
// /api/webtask: when the webtask exists and has secrets, they are carried
// into req. Only a caller entitled to read them (mayDecrypt: the master or
// an ancestor of the stored token) may keep them; anyone else could
// otherwise read them by replacing the code, so it must send `secrets`.
func (s *Server) keepSecrets(c echo.Context, caller *token.Claims, container, name string, req *token.IssueRequest) error {
	w, err := s.store.GetWebtask(c.Request().Context(), container, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(w.Secrets) == 0 {
		return nil
	}
	tok, _, err := token.ParseUnverified(w.Token)
	if err != nil || !mayDecrypt(caller, tok) {
		return errdefs.Errorf(errdefs.ErrDenied, "not authorized to keep the secrets of this webtask: send `secrets` to replace them")
	}
	kept := make(map[string]any, len(w.Secrets))
	for k, v := range w.Secrets {
		kept[k] = v
	}
	req.Ectx, req.Set["ectx"] = kept, true
	return nil
}
