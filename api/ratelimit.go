package api

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/store/token"
)

// Rate limits come from token claims (reference §2):
//
//   - ls lm lh ld lw lo limit the webtask runs of a container per second,
//     minute, hour, day, week and month (30 days). They are inherited from
//     the issuer, so every token of one lineage shares them; runs are
//     counted per (container, window, limit).
//   - lts ltm lth ltd ltw lto limit the requests one token authorizes (API
//     calls and runs), counted per token id. They are not inherited (the
//     reference), but a child's requests count against every ancestor's
//     buckets too (token.Narrow records the ancestors' limits in the
//     child's alim claim), so a child issued without limits does not
//     bypass its parent's.
//
// Each limit is a token bucket (x/time/rate) of n tokens refilled at n per
// window: at most n requests in a burst and n per window on average. A
// request beyond it gets 429 with Retry-After.

// limitWindow is one rate-limit claim and its window.
type limitWindow struct {
	claim string
	per   time.Duration
	unit  string
}

const day = 24 * time.Hour

var (
	containerWindows = [6]limitWindow{
		{"ls", time.Second, "second"}, {"lm", time.Minute, "minute"}, {"lh", time.Hour, "hour"},
		{"ld", day, "day"}, {"lw", 7 * day, "week"}, {"lo", 30 * day, "month"},
	}
	tokenWindows = [6]limitWindow{
		{"lts", time.Second, "second"}, {"ltm", time.Minute, "minute"}, {"lth", time.Hour, "hour"},
		{"ltd", day, "day"}, {"ltw", 7 * day, "week"}, {"lto", 30 * day, "month"},
	}
)

func containerLimits(c *token.Claims) [6]int64 { return [6]int64{c.Ls, c.Lm, c.Lh, c.Ld, c.Lw, c.Lo} }
func tokenLimits(c *token.Claims) [6]int64     { return [6]int64{c.Lts, c.Ltm, c.Lth, c.Ltd, c.Ltw, c.Lto} }

// limiterSweepMin is the table size below which idle limiters are kept.
const limiterSweepMin = 4096

type limitKey struct {
	// scope is 'c' (container) or 't' (token); id the container or jti.
	scope byte
	id    string
	per   time.Duration
	n     int64
}

// RateLimitError is a refused request (errdefs.ErrExhausted: 429), with the
// time after which a retry can succeed (the Retry-After header).
type RateLimitError struct {
	RetryAfter time.Duration
	// Claim is the limit that refused the request ("lts", "ls", ...).
	Claim string
	Limit int64
	Unit  string
}

func (e *RateLimitError) Error() string {
	scope := "token"
	if len(e.Claim) == 2 {
		scope = "container"
	}
	return fmt.Sprintf("rate limit exceeded: the %s allows %d requests per %s (`%s`)", scope, e.Limit, e.Unit, e.Claim)
}

// Unwrap is the caller-facing error: ErrExhausted with Error's message.
func (e *RateLimitError) Unwrap() error { return errdefs.New(errdefs.ErrExhausted, e.Error()) }

// retryAfterSeconds is the Retry-After value: whole seconds, at least 1.
func (e *RateLimitError) retryAfterSeconds() string {
	return strconv.FormatInt(max(1, int64(math.Ceil(e.RetryAfter.Seconds()))), 10)
}

// limiters holds the token buckets. Buckets that are full again are
// indistinguishable from fresh ones and are dropped when the table grows,
// so its size follows the number of recently limited tokens and containers.
type limiters struct {
	mu      sync.Mutex
	m       map[limitKey]*rate.Limiter
	sweepAt int
}

func newLimiters() *limiters {
	return &limiters{m: make(map[limitKey]*rate.Limiter), sweepAt: limiterSweepMin}
}

// appendTokenChecks adds the token limits of c and of its ancestors (the
// alim claim).
func appendTokenChecks(dst []limitCheck, c *token.Claims) []limitCheck {
	dst = appendChecks(dst, 't', c.Jti, &tokenWindows, tokenLimits(c))
	for jti, l := range c.Alim {
		dst = appendChecks(dst, 't', jti, &tokenWindows, [6]int64{l.Lts, l.Ltm, l.Lth, l.Ltd, l.Ltw, l.Lto})
	}
	return dst
}

type limitCheck struct {
	key   limitKey
	claim string
	unit  string
}

// appendChecks adds the non-zero limits of vals (one per window).
func appendChecks(dst []limitCheck, scope byte, id string, windows *[6]limitWindow, vals [6]int64) []limitCheck {
	for i, n := range vals {
		if n > 0 {
			w := windows[i]
			dst = append(dst, limitCheck{key: limitKey{scope: scope, id: id, per: w.per, n: n}, claim: w.claim, unit: w.unit})
		}
	}
	return dst
}

// allow takes one request from every bucket in checks at time now, or
// from none: when one bucket is empty, the others are given back and the
// error says when to retry.
func (l *limiters) allow(now time.Time, checks []limitCheck) error {
	if len(checks) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var taken [24]*rate.Reservation
	res := taken[:0]
	for _, ch := range checks {
		lim := l.get(now, ch.key)
		r := lim.ReserveN(now, 1)
		if d := r.DelayFrom(now); !r.OK() || d > 0 {
			r.CancelAt(now)
			for _, p := range res {
				p.CancelAt(now)
			}
			return &RateLimitError{RetryAfter: d, Claim: ch.claim, Limit: ch.key.n, Unit: ch.unit}
		}
		res = append(res, r)
	}
	return nil
}

// get returns the bucket of k, creating it full. Caller holds l.mu.
func (l *limiters) get(now time.Time, k limitKey) *rate.Limiter {
	if lim, ok := l.m[k]; ok {
		return lim
	}
	if len(l.m) >= l.sweepAt {
		for key, lim := range l.m {
			if lim.TokensAt(now) >= float64(lim.Burst()) {
				delete(l.m, key)
			}
		}
		l.sweepAt = max(limiterSweepMin, 2*len(l.m))
	}
	burst := int(min(k.n, math.MaxInt32))
	lim := rate.NewLimiter(rate.Limit(float64(k.n)/k.per.Seconds()), burst)
	l.m[k] = lim
	return lim
}

func (l *limiters) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// limitToken applies the token limits of c and of its ancestors to one
// request.
func (s *Server) limitToken(c *token.Claims) error {
	var buf [12]limitCheck
	return s.limits.allow(s.now(), appendTokenChecks(buf[:0], c))
}

// limitRun applies to one run in container the container limits of c
// and, when withToken, its token limits too (a named run, authorized by
// the webtask's stored token).
func (s *Server) limitRun(c *token.Claims, container string, withToken bool) error {
	var buf [18]limitCheck
	checks := appendChecks(buf[:0], 'c', container, &containerWindows, containerLimits(c))
	if withToken {
		checks = appendTokenChecks(checks, c)
	}
	return s.limits.allow(s.now(), checks)
}
