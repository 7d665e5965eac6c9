// Package token implements webtask tokens (API reference §2): HS256 JWTs
// whose header is exactly {"alg":"HS256","kid":"<keyset id>"} (no "typ":
// sandboxjs switches to its v2 security mode when typ is present), their
// verification in the old server's order, container authorization, and the
// parsing and narrowing of issue requests.
package token

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/store/keyring"
)

// Verification errors (errdefs.ErrDenied). Their messages are the exact
// 403 messages of the API; callers match them with errors.Is.
var (
	ErrMalformed    = errdefs.New(errdefs.ErrDenied, "malformed JWT token")
	ErrUntrustedKey = errdefs.New(errdefs.ErrDenied, "JWT token signed with an untrusted key")
	ErrBadSignature = errdefs.New(errdefs.ErrDenied, "invalid JWT token signature")
	ErrNotYetValid  = errdefs.New(errdefs.ErrDenied, "not yet valid JWT token")
	ErrExpired      = errdefs.New(errdefs.ErrDenied, "expired JWT token")
	ErrRevoked      = errdefs.New(errdefs.ErrDenied, "token is revoked")
)

// Issue-request errors: every *ClaimError unwraps to one of these.
var (
	// ErrInvalidRequest: the request is malformed or inconsistent
	// (errdefs.ErrInvalid).
	ErrInvalidRequest = errdefs.New(errdefs.ErrInvalid, "invalid token request")
	// ErrNotAllowed: the request exceeds the caller's rights
	// (errdefs.ErrDenied).
	ErrNotAllowed = errdefs.New(errdefs.ErrDenied, "token request not allowed")
)

// ClaimError describes a refused issue request. Its message is safe to
// return to the client: it names claims, never secret values. It wraps an
// *errdefs.Error of ErrInvalidRequest or ErrNotAllowed with that message.
type ClaimError struct {
	// Claim is the offending claim ("" when not about one claim).
	Claim string
	err   *errdefs.Error
}

func (e *ClaimError) Error() string { return e.err.Error() }
func (e *ClaimError) Unwrap() error { return e.err }

func invalid(claim, format string, args ...any) error {
	return &ClaimError{Claim: claim, err: errdefs.Errorf(ErrInvalidRequest, format, args...)}
}

func notAllowed(claim, format string, args ...any) error {
	return &ClaimError{Claim: claim, err: errdefs.Errorf(ErrNotAllowed, format, args...)}
}

// Claims are the claims of a signed webtask token (§2).
type Claims struct {
	// Ten restricts the containers: a comma list or a /regex/. Empty means
	// a master (admin) token.
	Ten string `json:"ten,omitempty"`
	// Jtn names the webtask stored for this token.
	Jtn string `json:"jtn,omitempty"`
	// Jti is the token id (32 hex characters); Iat is issued-at in Unix seconds.
	Jti string `json:"jti"`
	Iat int64  `json:"iat"`
	// Ca is the issuance chain: the jtis of all ancestors.
	Ca []string `json:"ca"`
	// Dd is the remaining delegation depth; nil means unlimited.
	Dd *int `json:"dd,omitempty"`
	// Dr is 1 when the token may not revoke itself.
	Dr int `json:"dr,omitempty"`
	// URL is the code location (webtask://c/n or http(s)).
	URL string `json:"url,omitempty"`
	// Pctx are the public params (ctx.params).
	Pctx map[string]any `json:"pctx,omitempty"`
	// Ectx is the sealed secrets string "<b64>.<b64>" in a signed token.
	Ectx string `json:"ectx,omitempty"`
	// Secrets are plain secrets waiting to be sealed into Ectx by the
	// issuer; never serialized.
	Secrets map[string]any    `json:"-"`
	Meta    map[string]string `json:"meta,omitempty"`
	// Mb (merge body, 0/1) and Pb (parse body: PbNever, PbAlways,
	// PbOnArity). A nil Pb is an absent claim, which means PbOnArity (see
	// ParseBody); an explicit 0 is kept in the token.
	Mb int  `json:"mb,omitempty"`
	Pb *int `json:"pb,omitempty"`
	// Exp and Nbf are Unix seconds, 0 = unset.
	Exp  int64  `json:"exp,omitempty"`
	Nbf  int64  `json:"nbf,omitempty"`
	Host string `json:"host,omitempty"`
	// Container rate limits per second/minute/hour/day/week/month.
	Ls int64 `json:"ls,omitempty"`
	Lm int64 `json:"lm,omitempty"`
	Lh int64 `json:"lh,omitempty"`
	Ld int64 `json:"ld,omitempty"`
	Lw int64 `json:"lw,omitempty"`
	Lo int64 `json:"lo,omitempty"`
	// TokenLimits are the token rate limits (lts…lto, flattened in JSON).
	TokenLimits
	// Alim holds the token limits of the ancestors that have them, by
	// their jti (set by Narrow, never requested): the lts… claims are not
	// inherited, but a descendant's requests count against its ancestors'
	// buckets too, so that an unlimited child cannot bypass its parent.
	Alim map[string]TokenLimits `json:"alim,omitempty"`

	// Kid is the key id the token was signed with (set by Verify).
	Kid string `json:"-"`
}

// The parse-body modes of the pb claim (sandboxjs PARSE_NEVER, PARSE_ALWAYS,
// PARSE_ON_ARITY).
const (
	PbNever = 0
	// PbAlways reads and parses the body for every signature.
	PbAlways = 1
	// PbOnArity parses the body for 1/2-arity functions and leaves the
	// request stream untouched for 3-arity ones; the default when the
	// claim is absent.
	PbOnArity = 2
)

// ParseBody is the parse-body mode a pb claim value means: nil (absent)
// is PbOnArity.
func ParseBody(pb *int) int {
	if pb == nil {
		return PbOnArity
	}
	return *pb
}

// TokenLimits are the lts…lto claims of one token, per second, minute,
// hour, day, week and month (0: none).
type TokenLimits struct {
	Lts int64 `json:"lts,omitempty"`
	Ltm int64 `json:"ltm,omitempty"`
	Lth int64 `json:"lth,omitempty"`
	Ltd int64 `json:"ltd,omitempty"`
	Ltw int64 `json:"ltw,omitempty"`
	Lto int64 `json:"lto,omitempty"`
}

// jwt.Claims implementation; validation is done by Verify itself.
func (c *Claims) GetExpirationTime() (*jwt.NumericDate, error) { return nil, nil }
func (c *Claims) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (c *Claims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (c *Claims) GetIssuer() (string, error)                   { return "", nil }
func (c *Claims) GetSubject() (string, error)                  { return "", nil }
func (c *Claims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// IsMaster reports whether the token is an admin token (no ten).
func (c *Claims) IsMaster() bool { return c.Ten == "" }

// SingleContainer returns the container when ten names exactly one literal.
func (c *Claims) SingleContainer() (string, bool) {
	if c.Ten == "" || isRegexTen(c.Ten) || strings.Contains(c.Ten, ",") {
		return "", false
	}
	return strings.TrimSpace(c.Ten), true
}

// FirstContainer returns the first literal container of ten ("" for
// master tokens and regular expressions).
func (c *Claims) FirstContainer() string {
	if c.Ten == "" || isRegexTen(c.Ten) {
		return ""
	}
	first, _, _ := strings.Cut(c.Ten, ",")
	return strings.TrimSpace(first)
}

// IssuedBy reports whether jti is an ancestor of this token.
func (c *Claims) IssuedBy(jti string) bool {
	if jti == "" {
		return false
	}
	for _, a := range c.Ca {
		if a == jti {
			return true
		}
	}
	return false
}

// AllowsContainer reports whether the token may act on container name: a
// master token allows all, a comma list allows its members, a /regex/
// allows names it matches completely.
func (c *Claims) AllowsContainer(name string) bool {
	if c.Ten == "" {
		return true
	}
	return tenAllows(c.Ten, name)
}

func tenAllows(ten, name string) bool {
	if isRegexTen(ten) {
		re, err := tenRegexp(ten)
		return err == nil && re.MatchString(name)
	}
	for rest := ten; rest != ""; {
		var item string
		item, rest, _ = strings.Cut(rest, ",")
		if strings.TrimSpace(item) == name {
			return true
		}
	}
	return false
}

func isRegexTen(ten string) bool {
	return len(ten) >= 2 && ten[0] == '/' && ten[len(ten)-1] == '/'
}

// regexCache holds compiled /regex/ ten claims (anchored); bounded.
var regexCache struct {
	sync.Mutex
	m map[string]*regexp.Regexp
}

const regexCacheMax = 1024

func tenRegexp(ten string) (*regexp.Regexp, error) {
	regexCache.Lock()
	re, ok := regexCache.m[ten]
	regexCache.Unlock()
	if ok {
		return re, nil
	}
	re, err := regexp.Compile(`^(?:` + ten[1:len(ten)-1] + `)$`)
	if err != nil {
		return nil, err
	}
	regexCache.Lock()
	if regexCache.m == nil || len(regexCache.m) >= regexCacheMax {
		regexCache.m = make(map[string]*regexp.Regexp)
	}
	regexCache.m[ten] = re
	regexCache.Unlock()
	return re, nil
}

// ValidName reports whether s is a valid container or webtask name:
// ^[-a-zA-Z0-9._~!$+=:@]+$, 1..128 characters, not "." or "..".
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 128 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case strings.IndexByte("-._~!$+=:@", b) >= 0:
		default:
			return false
		}
	}
	return true
}

// KeyLookup finds the key set of a kid; it returns an error wrapping
// keyring.ErrUnknownKey for unknown or retired ids.
type KeyLookup interface {
	Get(kid string) (*keyring.KeySet, error)
}

// RevokedFunc reports whether any of the given jtis is revoked.
type RevokedFunc func(jtis []string) (bool, error)

// Sign signs c with ks (HS256, header {"alg":"HS256","kid":ks.ID}). It sets
// c.Jti (32 hex) when empty, c.Iat when zero and c.Ca to [] when nil.
// Plain c.Secrets are never serialized: seal them into c.Ectx first.
func Sign(ks *keyring.KeySet, c *Claims) (string, error) {
	if ks == nil || len(ks.SigningKey) == 0 || ks.ID == "" {
		return "", errors.New("token: sign: no usable key set")
	}
	if c.Jti == "" {
		jti, err := NewJTI()
		if err != nil {
			return "", err
		}
		c.Jti = jti
	}
	if c.Iat == 0 {
		c.Iat = time.Now().Unix()
	}
	if c.Ca == nil {
		c.Ca = []string{}
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	delete(t.Header, "typ")
	t.Header["kid"] = ks.ID
	s, err := t.SignedString(ks.SigningKey)
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return s, nil
}

// NewJTI returns a fresh token id: 32 hex characters.
func NewJTI() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("token: jti: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// parser decodes segments strictly (RFC 4648 §3.5: the unused bits of a
// segment's last base64url character must be zero), so a token has exactly
// one valid spelling.
var parser = jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding())

// Verify checks raw without a revocation check; see Verifier.
func Verify(keys KeyLookup, raw string, now time.Time) (*Claims, error) {
	return Verifier{Keys: keys}.Verify(raw, now)
}

// Verifier verifies tokens in the reference order: kid names a known key
// set, HS256 signature, nbf, exp, then revocation of ca plus jti.
type Verifier struct {
	Keys KeyLookup
	// Revoked is optional; nil skips the revocation check.
	Revoked RevokedFunc
}

// Verify parses and checks raw at time now.
func (v Verifier) Verify(raw string, now time.Time) (*Claims, error) {
	c, err := VerifySignature(v.Keys, raw)
	if err != nil {
		return nil, err
	}
	if err := v.Check(c, now); err != nil {
		return nil, err
	}
	return c, nil
}

// Check runs the checks after the signature on claims whose signature was
// verified earlier (for example cached ones): the key set is still live
// (not retired since), nbf, exp, then revocation of ca plus jti.
func (v Verifier) Check(c *Claims, now time.Time) error {
	if _, err := v.Keys.Get(c.Kid); err != nil {
		if errors.Is(err, keyring.ErrUnknownKey) {
			return ErrUntrustedKey
		}
		return fmt.Errorf("token: key lookup: %w", err)
	}
	sec := now.Unix()
	if c.Nbf != 0 && sec < c.Nbf {
		return ErrNotYetValid
	}
	if c.Exp != 0 && sec >= c.Exp {
		return ErrExpired
	}
	if v.Revoked != nil {
		jtis := make([]string, 0, len(c.Ca)+1)
		jtis = append(append(jtis, c.Ca...), c.Jti)
		revoked, err := v.Revoked(jtis)
		if err != nil {
			return fmt.Errorf("token: revocation check: %w", err)
		}
		if revoked {
			return ErrRevoked
		}
	}
	return nil
}

// VerifySignature checks only that kid names a live key set and that the
// HS256 signature is valid; nbf, exp and revocation are not checked (see
// Verifier.Check). Revocation uses it: an expired or already revoked token
// can still be revoked.
func VerifySignature(keys KeyLookup, raw string) (*Claims, error) {
	if !compactJWS(raw) {
		return nil, ErrMalformed
	}
	c := new(Claims)
	var lookupErr error
	t, err := parser.ParseWithClaims(raw, c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, ErrUntrustedKey
		}
		ks, err := keys.Get(kid)
		if err != nil {
			if errors.Is(err, keyring.ErrUnknownKey) {
				return nil, ErrUntrustedKey
			}
			lookupErr = err
			return nil, err
		}
		c.Kid = kid
		return ks.SigningKey, nil
	})
	switch {
	case lookupErr != nil:
		return nil, fmt.Errorf("token: key lookup: %w", lookupErr)
	case err == nil && t != nil && t.Valid:
		return c, nil
	case errors.Is(err, ErrUntrustedKey):
		return nil, ErrUntrustedKey
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, ErrMalformed
	default:
		return nil, ErrBadSignature
	}
}

// compactJWS reports whether raw holds only base64url characters and dots.
// Go's base64 decoders skip CR and LF even in strict mode, which would give
// a token more than one spelling.
func compactJWS(raw string) bool {
	for i := 0; i < len(raw); i++ {
		b := raw[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_' || b == '.') {
			return false
		}
	}
	return true
}

// ParseUnverified decodes raw's claims without checking anything. Only for
// display and tests.
func ParseUnverified(raw string) (*Claims, map[string]any, error) {
	c := new(Claims)
	t, _, err := parser.ParseUnverified(raw, c)
	if err != nil {
		return nil, nil, ErrMalformed
	}
	return c, t.Header, nil
}
