package token

import (
	"bytes"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MaxLimit is the largest allowed rate-limit claim value.
const MaxLimit = 2147483647

// IssueRequest is a parsed POST /api/tokens/issue body. Only claims listed
// in Set were present in the request.
type IssueRequest struct {
	Ten, Jtn, Jti, URL, Code, Host string
	Pctx, Ectx                     map[string]any
	Meta                           map[string]string
	Dd, Dr, Mb, Pb                 int
	Exp, Nbf                       int64
	// Limits holds the rate-limit claims present (ls…lo, lts…lto).
	Limits map[string]int64
	// Set holds the names of the claims present in the request.
	Set map[string]bool
}

// Has reports whether the request carried claim.
func (r *IssueRequest) Has(claim string) bool { return r.Set[claim] }

// containerLimitClaims are inherited from the issuer; tokenLimitClaims are not.
var (
	containerLimitClaims = []string{"ls", "lm", "lh", "ld", "lw", "lo"}
	tokenLimitClaims     = []string{"lts", "ltm", "lth", "ltd", "ltw", "lto"}
)

type claimKind int

const (
	kString claimKind = iota
	kObject
	kStringMap
	kInt
)

var requestClaims = map[string]claimKind{
	"ten": kString, "jtn": kString, "jti": kString, "url": kString, "code": kString, "host": kString,
	"pctx": kObject, "ectx": kObject, "meta": kStringMap,
	"dd": kInt, "dr": kInt, "mb": kInt, "pb": kInt, "exp": kInt, "nbf": kInt,
	"ls": kInt, "lm": kInt, "lh": kInt, "ld": kInt, "lw": kInt, "lo": kInt,
	"lts": kInt, "ltm": kInt, "lth": kInt, "ltd": kInt, "ltw": kInt, "lto": kInt,
}

// ParseIssueRequest parses and type-checks an issue request body. Numbers
// are lenient: JSON numbers with an integral value (1, 1.0) and strings
// holding one ("10") are accepted. Unknown claims, wrong types, values out
// of range and code together with url are refused with a *ClaimError
// (ErrInvalidRequest) naming the claim. A null claim counts as absent.
func ParseIssueRequest(body []byte) (*IssueRequest, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return nil, invalid("", "the request body must be a JSON object of token claims")
	}
	if dec.More() {
		return nil, invalid("", "the request body must be a single JSON object")
	}
	// Check in a stable order so the message names the same claim every time.
	names := make([]string, 0, len(raw))
	for k := range raw {
		names = append(names, k)
	}
	sort.Strings(names)
	r := &IssueRequest{Set: make(map[string]bool, len(raw))}
	for _, name := range names {
		v := raw[name]
		kind, ok := requestClaims[name]
		if !ok {
			return nil, invalid(name, "unsupported claim `%s`", name)
		}
		if string(bytes.TrimSpace(v)) == "null" {
			continue
		}
		if err := r.setClaim(name, kind, v); err != nil {
			return nil, err
		}
		r.Set[name] = true
	}
	if r.Has("code") && r.Has("url") {
		return nil, invalid("code", "the `code` and `url` claims cannot both be specified")
	}
	if r.Has("exp") && r.Has("nbf") && r.Exp <= r.Nbf {
		return nil, invalid("exp", "the `exp` claim must be later than the `nbf` claim")
	}
	return r, nil
}

func (r *IssueRequest) setClaim(name string, kind claimKind, v json.RawMessage) error {
	switch kind {
	case kString:
		var s string
		if json.Unmarshal(v, &s) != nil {
			return invalid(name, "the `%s` claim must be a string", name)
		}
		return r.setString(name, s)
	case kObject:
		var m map[string]any
		if json.Unmarshal(v, &m) != nil {
			return invalid(name, "the `%s` claim must be a JSON object", name)
		}
		if name == "pctx" {
			r.Pctx = m
		} else {
			r.Ectx = m
		}
	case kStringMap:
		var m map[string]string
		if json.Unmarshal(v, &m) != nil {
			return invalid(name, "the `%s` claim must be a JSON object of string values", name)
		}
		r.Meta = m
	case kInt:
		n, ok := lenientInt(v)
		if !ok {
			return invalid(name, "the `%s` claim must be an integer", name)
		}
		return r.setInt(name, n)
	}
	return nil
}

func (r *IssueRequest) setString(name, s string) error {
	switch name {
	case "ten":
		if err := checkTen(s); err != nil {
			return err
		}
		r.Ten = s
	case "jtn":
		if !ValidName(s) {
			return invalid(name, "the `jtn` claim must be a valid webtask name")
		}
		r.Jtn = s
	case "jti":
		if len(s) != 32 || strings.Trim(s, "0123456789abcdef") != "" {
			return invalid(name, "the `jti` claim must be 32 lower-case hex characters")
		}
		r.Jti = s
	case "url":
		// webtask:// URLs are minted by the server only: accepting one
		// from a request would let a token point at another tenant's code.
		if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
			return invalid(name, "the `url` claim must be an http or https URL")
		}
		r.URL = s
	case "code":
		// Empty code is valid code: it is stored, and fails when run
		// with the runtime's compile error.
		r.Code = s
	case "host":
		r.Host = s
	}
	return nil
}

func (r *IssueRequest) setInt(name string, n int64) error {
	switch name {
	case "dd":
		if n < 0 || n > MaxLimit {
			return invalid(name, "the `dd` claim must be a non-negative integer")
		}
		r.Dd = int(n)
	case "dr", "mb":
		if n != 0 && n != 1 {
			return invalid(name, "the `%s` claim must be 0 or 1", name)
		}
		if name == "dr" {
			r.Dr = int(n)
		} else {
			r.Mb = int(n)
		}
	case "pb":
		if n < 0 || n > 2 {
			return invalid(name, "the `pb` claim must be 0, 1 or 2")
		}
		r.Pb = int(n)
	case "exp", "nbf":
		if n <= 0 {
			return invalid(name, "the `%s` claim must be a positive Unix time in seconds", name)
		}
		if name == "exp" {
			r.Exp = n
		} else {
			r.Nbf = n
		}
	default: // rate limits
		if n < 1 || n > MaxLimit {
			return invalid(name, "the `%s` claim must be an integer between 1 and %d", name, MaxLimit)
		}
		if r.Limits == nil {
			r.Limits = make(map[string]int64)
		}
		r.Limits[name] = n
	}
	return nil
}

// lenientInt accepts a JSON number or a JSON string holding one, with an
// integral value.
func lenientInt(v json.RawMessage) (int64, bool) {
	s := string(bytes.TrimSpace(v))
	if strings.HasPrefix(s, `"`) {
		if json.Unmarshal(v, &s) != nil {
			return 0, false
		}
		s = strings.TrimSpace(s)
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// checkTen validates a ten claim: a /regex/ that compiles, or a comma list
// of valid container names.
func checkTen(ten string) error {
	if ten == "" {
		return invalid("ten", "the `ten` claim must not be empty")
	}
	if isRegexTen(ten) {
		if _, err := tenRegexp(ten); err != nil {
			return invalid("ten", "the `ten` claim is not a valid regular expression")
		}
		return nil
	}
	for _, item := range strings.Split(ten, ",") {
		if !ValidName(strings.TrimSpace(item)) {
			return invalid("ten", "the `ten` claim must be a comma-separated list of valid container names or a /regex/")
		}
	}
	return nil
}

// Narrow derives the claims of a child token from the issuing parent's
// claims and an issue request, at time now, by the old server's rules:
//
//   - a parent with dd 0 cannot issue;
//   - claims the parent fixes (url, pctx, ectx, jtn, ls…lo) cannot be set;
//     a parent with url cannot issue code;
//   - a child ten must be a subset of the parent's list or match its regex
//     (and cannot be a regex itself then);
//   - url, exp, nbf, ten, pctx, ectx, jtn come from the request, else the
//     parent; exp may not exceed the parent's, nbf may not precede it;
//   - dd = min(parent.dd-1, req.dd), else whichever is set, else 1;
//   - mb/pb come from the parent when it has url, else from the request
//     when it has url or code; an absent pb stays absent (PbOnArity);
//   - jtn needs the resulting ten to name one literal container, and code or url;
//   - jti may only be chosen with the opaque master key (parent nil).
//
// A nil parent is the opaque master key. The result carries plain request
// secrets in Secrets (to be sealed by the caller) or the parent's sealed
// Ectx; Jti is left for Sign to generate unless requested.
func Narrow(parent *Claims, req *IssueRequest, now time.Time) (*Claims, error) {
	p := parent
	if p == nil {
		p = &Claims{}
	}
	if p.Dd != nil && *p.Dd <= 0 {
		return nil, invalid("dd", "The authentication webtask token cannot be used to issue new webtask tokens.")
	}
	fixed := map[string]bool{
		"url": p.URL != "", "pctx": p.Pctx != nil, "ectx": p.Ectx != "", "jtn": p.Jtn != "",
		"ls": p.Ls != 0, "lm": p.Lm != 0, "lh": p.Lh != 0, "ld": p.Ld != 0, "lw": p.Lw != 0, "lo": p.Lo != 0,
	}
	for _, name := range []string{"url", "pctx", "ectx", "jtn", "ls", "lm", "lh", "ld", "lw", "lo"} {
		if fixed[name] && req.Has(name) {
			return nil, invalid(name, "the `%s` claim cannot be specified if the authentication token already specifies it", name)
		}
	}
	if p.URL != "" && req.Has("code") {
		return nil, invalid("code", "the `code` claim cannot be specified if the authentication token already specifies `url`")
	}
	if req.Has("jti") && parent != nil {
		return nil, notAllowed("jti", "the `jti` claim can only be specified when issuing with the master key")
	}

	c := &Claims{
		Ten: p.Ten, Jtn: p.Jtn, URL: p.URL, Pctx: p.Pctx, Ectx: p.Ectx,
		Exp: p.Exp, Nbf: p.Nbf,
		Ls: p.Ls, Lm: p.Lm, Lh: p.Lh, Ld: p.Ld, Lw: p.Lw, Lo: p.Lo,
		Jti: req.Jti, Iat: now.Unix(), Dr: req.Dr, Host: req.Host, Meta: req.Meta,
	}
	c.Ca = make([]string, 0, len(p.Ca)+1)
	c.Ca = append(c.Ca, p.Ca...)
	if parent != nil && p.Jti != "" {
		c.Ca = append(c.Ca, p.Jti)
	}
	// The ancestors' token limits bind the child's requests too.
	if own := p.TokenLimits; len(p.Alim) > 0 || (parent != nil && p.Jti != "" && own != (TokenLimits{})) {
		c.Alim = make(map[string]TokenLimits, len(p.Alim)+1)
		for jti, l := range p.Alim {
			c.Alim[jti] = l
		}
		if parent != nil && p.Jti != "" && own != (TokenLimits{}) {
			c.Alim[p.Jti] = own
		}
	}

	if req.Has("ten") {
		if err := narrowTen(p.Ten, req.Ten); err != nil {
			return nil, err
		}
		c.Ten = req.Ten
	}
	if req.Has("jtn") {
		c.Jtn = req.Jtn
	}
	if req.Has("url") {
		c.URL = req.URL
	}
	if req.Has("pctx") {
		c.Pctx = req.Pctx
	}
	if req.Has("ectx") {
		c.Secrets, c.Ectx = req.Ectx, ""
	}
	if req.Has("exp") {
		if p.Exp != 0 && req.Exp > p.Exp {
			return nil, notAllowed("exp", "the `exp` claim cannot be later than the authentication token's `exp`")
		}
		c.Exp = req.Exp
	}
	if req.Has("nbf") {
		if p.Nbf != 0 && req.Nbf < p.Nbf {
			return nil, notAllowed("nbf", "the `nbf` claim cannot be earlier than the authentication token's `nbf`")
		}
		c.Nbf = req.Nbf
	}
	if c.Exp != 0 && c.Exp <= now.Unix() {
		return nil, invalid("exp", "the `exp` claim is in the past")
	}
	if c.Exp != 0 && c.Nbf != 0 && c.Exp <= c.Nbf {
		return nil, invalid("exp", "the `exp` claim must be later than the `nbf` claim")
	}

	// Delegation depth.
	switch {
	case p.Dd != nil && req.Has("dd"):
		dd := min(*p.Dd-1, req.Dd)
		c.Dd = &dd
	case p.Dd != nil:
		dd := *p.Dd - 1
		c.Dd = &dd
	case req.Has("dd"):
		dd := req.Dd
		c.Dd = &dd
	default:
		dd := 1
		c.Dd = &dd
	}

	// Parse/merge body.
	if p.URL != "" {
		pbDiffers := req.Has("pb") && req.Pb != ParseBody(p.Pb)
		if (req.Has("mb") && req.Mb != p.Mb) || pbDiffers {
			claim := "mb"
			if pbDiffers {
				claim = "pb"
			}
			return nil, invalid(claim, "the `%s` claim is fixed by the authentication token's `url`", claim)
		}
		c.Mb, c.Pb = p.Mb, p.Pb
	} else if req.Has("url") || req.Has("code") {
		c.Mb = req.Mb
		if req.Has("pb") {
			pb := req.Pb
			c.Pb = &pb // explicit, even 0; absent stays nil (PbOnArity)
		}
	}

	// Token limits are per token, never inherited (but recorded in Alim
	// above); container limits only
	// where the parent has none (checked above).
	for _, name := range containerLimitClaims {
		if n, ok := req.Limits[name]; ok {
			*c.limit(name) = n
		}
	}
	for _, name := range tokenLimitClaims {
		if n, ok := req.Limits[name]; ok {
			*c.limit(name) = n
		}
	}

	if c.Jtn != "" {
		if _, ok := c.SingleContainer(); !ok {
			return nil, invalid("jtn", "the `jtn` claim requires the `ten` claim to name a single container")
		}
		if c.URL == "" && !req.Has("code") {
			return nil, invalid("jtn", "the `jtn` claim requires `code` or `url`")
		}
	}
	return c, nil
}

func (c *Claims) limit(name string) *int64 {
	switch name {
	case "ls":
		return &c.Ls
	case "lm":
		return &c.Lm
	case "lh":
		return &c.Lh
	case "ld":
		return &c.Ld
	case "lw":
		return &c.Lw
	case "lo":
		return &c.Lo
	case "lts":
		return &c.Lts
	case "ltm":
		return &c.Ltm
	case "lth":
		return &c.Lth
	case "ltd":
		return &c.Ltd
	case "ltw":
		return &c.Ltw
	case "lto":
		return &c.Lto
	}
	panic("token: unknown limit claim " + name)
}

// narrowTen checks that child ten is within parent ten.
func narrowTen(parent, child string) error {
	if parent == "" {
		return nil
	}
	if isRegexTen(child) {
		return notAllowed("ten", "the `ten` claim cannot be a regular expression unless issued by a master token")
	}
	for _, item := range strings.Split(child, ",") {
		if !tenAllows(parent, strings.TrimSpace(item)) {
			return notAllowed("ten", "the `ten` claim must be within the authentication token's `ten`: container `%s` is not allowed", strings.TrimSpace(item))
		}
	}
	return nil
}
