package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/sandbox/agent"
	"github.com/webtaskd/webtaskd/store"
	"github.com/webtaskd/webtaskd/store/token"
)

// Remote code (http/https url claims) is fetched with this timeout and
// cached by URL for remoteCodeTTL.
const (
	remoteFetchTimeout = 5 * time.Second
	remoteCodeTTL      = 60 * time.Second
	remoteCacheMax     = 1024
)

// runNamed is ANY /api/run/{c}/{n}[/sub/path]: the stored webtask's own
// token authorizes the call, no caller credential is needed.
func (s *Server) runNamed(c echo.Context) error {
	container, err := pathName(c, "container", "container")
	if err != nil {
		return err
	}
	name, err := pathName(c, "name", "webtask")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	w, err := s.store.GetWebtask(ctx, container, name)
	if err != nil {
		if errors.Is(err, store.ErrWebtaskNotFound) {
			return errNoWebtaskToken
		}
		return err
	}
	// The stored token authorizes the run: revoked, expired or retired
	// tokens stop it; its rate limits apply.
	if err := s.checkStoredToken(w); err != nil {
		return err
	}
	code, hash, err := s.codeOf(c, w)
	if err != nil {
		return err
	}
	if code, hash, err = s.runnable(ctx, code, hash, w.Meta); err != nil {
		return err
	}
	body, more, err := s.runBody(c)
	if err != nil {
		return err
	}
	if more != nil {
		defer more.Close()
	}
	req := s.newRequest(c, container, code, hash, body)
	if more != nil {
		req.BodyMore = more
	}
	req.Name = name
	req.Secrets, req.Params, req.Meta = w.Secrets, w.Params, w.Meta
	req.PB, req.MB, req.Token = token.ParseBody(w.PB), w.MB, w.Token
	if err := s.resolve(ctx, req, w.Meta); err != nil {
		return err
	}
	req.Authority = w.Token // ctx.create_token narrows the stored token
	if err := s.fetchExtensions(ctx, req, w.Meta); err != nil {
		return err
	}
	req.Fixed = s.fixedOf(w, req)
	if pb, mb := stripConsumed(req, false); pb || mb {
		applyBodyOptions(req, pb, mb)
	}
	return s.invoke(c, container, req)
}

// runUnnamed is ANY /api/run/{c}: the caller's token authorizes; the code
// is its url claim, else the webtask_url query parameter, else the body
// of a POST/PUT/PATCH (wt create --bundle's version probe). The body is
// never form-parsed.
func (s *Server) runUnnamed(c echo.Context) error {
	caller, raw, err := s.caller(c)
	if err != nil {
		return err
	}
	container, err := pathName(c, "container", "container")
	if err != nil {
		return err
	}
	if err := authorize(caller, container); err != nil {
		return err
	}
	if err := s.limitRun(caller, container, false); err != nil {
		return err
	}
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	var code, hash string
	r := c.Request()
	switch {
	case caller.URL != "":
		code, hash, err = s.codeAt(c, caller.URL)
	case c.QueryParam("webtask_url") != "":
		u := c.QueryParam("webtask_url")
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return errdefs.Errorf(errdefs.ErrInvalid, "webtask_url must be an http or https URL")
		}
		code, hash, err = s.codeAt(c, u)
	case (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch) && len(body) > 0:
		code, hash, body = string(body), hashCode(body), nil
	default:
		return errdefs.Errorf(errdefs.ErrInvalid, "no code to run: the token has no url and the request body holds no code")
	}
	if err != nil {
		return err
	}
	if code, hash, err = s.runnable(r.Context(), code, hash, caller.Meta); err != nil {
		return err
	}
	secrets, err := s.secretsOf(caller)
	if err != nil {
		return err
	}
	req := s.newRequest(c, container, code, hash, body)
	req.Name = caller.Jtn
	req.Secrets, req.Params, req.Meta = secrets, caller.Pctx, caller.Meta
	req.PB, req.MB = token.ParseBody(caller.Pb), caller.Mb
	if err := s.resolve(r.Context(), req, caller.Meta); err != nil {
		return err
	}
	req.Authority = raw // ctx.create_token narrows the caller's token
	if err := s.fetchExtensions(r.Context(), req, caller.Meta); err != nil {
		return err
	}
	if caller.URL != "" {
		// ctx.token is exposed only when the token fixes the code.
		req.Token = raw
	}
	if pb, mb := stripConsumed(req, true); pb || mb {
		applyBodyOptions(req, pb, mb)
	}
	return s.invoke(c, container, req)
}

// applyBodyOptions turns on body parsing (webtask_pb=1) and merging
// (webtask_mb=1) for one request; the pre-encoded fields no longer apply.
func applyBodyOptions(req *agent.Request, pb, mb bool) {
	if pb {
		req.PB = 1
	}
	if mb {
		req.MB = 1
	}
	req.Fixed = nil
}

func hashCode(code []byte) string {
	sum := sha256.Sum256(code)
	return hex.EncodeToString(sum[:])
}

// codeOf returns the code of a stored webtask and its hash: stored code
// (hash computed once by the store), another stored webtask, or remote.
func (s *Server) codeOf(c echo.Context, w *store.Webtask) (code, hash string, err error) {
	if hasStoredCode(w) {
		hash = w.CodeHash
		if hash == "" {
			hash = hashCode([]byte(w.Code))
		}
		return w.Code, hash, nil
	}
	if w.CodeURL == "" {
		return "", "", fmt.Errorf("webtask %s/%s has neither code nor url", w.Container, w.Name)
	}
	return s.codeAt(c, w.CodeURL)
}

// hasStoredCode: w's code is stored with it (its url is its own
// webtask://{c}/{n}), which may be empty code, valid code that fails when
// run; else w's url names remote code.
func hasStoredCode(w *store.Webtask) bool {
	return w.Code != "" || w.CodeURL == storedCodeURL(w.Container, w.Name)
}

// codeAt resolves a url claim: webtask:///code/{sha256} from the code
// blobs (cached in memory), webtask://{c}/{n} from the store (one level),
// http(s) through the remote cache.
func (s *Server) codeAt(c echo.Context, u string) (code, hash string, err error) {
	if h, ok := parseCodeURL(u); ok {
		code, err := s.codes.GetCode(c.Request().Context(), h)
		if err != nil {
			return "", "", err
		}
		return code, h, nil
	}
	if cn, n, ok := parseWebtaskURL(u); ok {
		w, err := s.store.GetWebtask(c.Request().Context(), cn, n)
		if err != nil {
			if errors.Is(err, store.ErrWebtaskNotFound) {
				return "", "", errNoWebtaskToken
			}
			return "", "", err
		}
		if !hasStoredCode(w) {
			return "", "", errdefs.Errorf(errdefs.ErrInvalid, "the webtask named by the url claim has no stored code")
		}
		return w.Code, w.CodeHash, nil
	}
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return "", "", errdefs.Errorf(errdefs.ErrInvalid, "unsupported code url")
	}
	code, hash, err = s.remote.get(u)
	if errors.Is(err, ErrPrivateAddress) {
		return "", "", err // 400
	}
	if err != nil {
		s.log.Warn("fetching remote webtask code failed", "req_id", reqID(c), "err", err)
		return "", "", errdefs.Errorf(errdefs.ErrUpstream, "unable to fetch the webtask code from its url")
	}
	return code, hash, nil
}

// newRequest builds the agent request common to all runs.
func (s *Server) newRequest(c echo.Context, container, code, hash string, body []byte) *agent.Request {
	r := c.Request()
	return &agent.Request{
		ReqID:     reqID(c),
		Container: container,
		URLFormat: 1,
		CodeHash:  hash,
		Code:      code,
		Method:    r.Method,
		URL:       r.RequestURI,
		Headers:   lowerHeaders(r),
		Body:      body,
	}
}

// commonLower avoids allocating for the usual header names.
var commonLower = map[string]string{
	"Accept": "accept", "Accept-Encoding": "accept-encoding", "Accept-Language": "accept-language",
	"Authorization": "authorization", "Cache-Control": "cache-control", "Connection": "connection",
	"Content-Length": "content-length", "Content-Type": "content-type", "Cookie": "cookie",
	"Origin": "origin", "Referer": "referer", "User-Agent": "user-agent",
	"X-Forwarded-For": "x-forwarded-for", "X-Forwarded-Proto": "x-forwarded-proto",
	"X-Forwarded-Host": "x-forwarded-host", "X-Request-Id": "x-request-id",
}

// lowerHeaders returns the request headers with lower-case names, plus
// host (Go moves it out of Header). Value slices are shared, not copied.
func lowerHeaders(r *http.Request) map[string][]string {
	h := make(map[string][]string, len(r.Header)+1)
	for k, v := range r.Header {
		lk, ok := commonLower[k]
		if !ok {
			lk = strings.ToLower(k)
		}
		h[lk] = v
	}
	if r.Host != "" {
		h["host"] = []string{r.Host}
	}
	return h
}

// invoke runs req and writes the webtask's response back verbatim.
func (s *Server) invoke(c echo.Context, container string, req *agent.Request) error {
	call, err := s.runner.Invoke(c.Request().Context(), container, req)
	if call != nil && call.Served != "" {
		// How the call was served and how long the sandbox manager took
		// (boot, queueing and the webtask itself), on errors too.
		h := c.Response().Header()
		h[HeaderSandbox] = []string{string(call.Served)}
		h[HeaderDuration] = []string{strconv.FormatFloat(float64(call.Duration.Microseconds())/1000, 'f', 3, 64)}
	}
	if err != nil {
		return err
	}
	if call == nil || call.Body == nil {
		return fmt.Errorf("runner returned no response for %s", container)
	}
	defer call.Body.Close()
	if call.Status < 100 || call.Status > 999 {
		return fmt.Errorf("runner returned an invalid response for %s", container)
	}
	h := c.Response().Header()
	for k, v := range call.Header {
		ck := http.CanonicalHeaderKey(k)
		switch ck {
		case "Content-Length":
			// A streamed body keeps the length its webtask announced (no
			// chunked encoding then); a complete one gets its real length.
			if call.Streamed && len(v) == 1 {
				if _, err := strconv.ParseUint(v[0], 10, 63); err == nil {
					h[ck] = v
				}
			}
			continue
		case "Transfer-Encoding", "Connection", HeaderRequestID, HeaderSandbox, HeaderDuration:
			continue
		}
		h[ck] = v
	}
	if _, ok := h["Content-Type"]; !ok {
		// No content type from the webtask: none to the caller either (as
		// Node sends), not one sniffed by net/http.
		h["Content-Type"] = nil
	}
	c.Response().WriteHeader(call.Status)
	if !call.Streamed {
		if _, err := io.Copy(c.Response(), call.Body); err != nil {
			s.log.Debug("writing webtask response", "req_id", req.ReqID, "err", err)
		}
		return nil
	}
	return s.stream(c, req.ReqID, call.Body)
}

// streamBufBytes is the copy buffer of a streamed response (a piece of
// the agent's stream is at most 32 KiB).
const streamBufBytes = 32 << 10

var streamBufPool = sync.Pool{New: func() any { b := make([]byte, streamBufBytes); return &b }}

// pendingBody is a streamed body that tells whether its next Read returns
// at once (sandbox.Call.Body).
type pendingBody interface{ Pending() bool }

// stream copies a streamed body to the caller, flushing every piece as it
// comes (pieces that came together, together): the caller's pace is the
// webtask's (flow control back to res.write). A body cut off (budget,
// timeouts, runtime failure) drops the connection without the final
// chunk, so that nothing looks complete that is not; a caller gone aborts
// the webtask's response (Body.Close).
func (s *Server) stream(c echo.Context, reqID string, body io.Reader) error {
	w := c.Response()
	rc := http.NewResponseController(w.Writer)
	bp := streamBufPool.Get().(*[]byte)
	defer streamBufPool.Put(bp)
	buf := *bp
	pending, _ := body.(pendingBody)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				s.log.Debug("caller went away during a streamed response", "req_id", reqID, "err", werr)
				return nil // the deferred Body.Close aborts the webtask's response
			}
			// More of the body already there (or its end): written with
			// it, in one write to the caller.
			if pending == nil || !pending.Pending() {
				_ = rc.Flush() // ErrNotSupported: an in-process caller (cron)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			s.log.Info("streamed response cut off", "req_id", reqID, "err", err)
			panic(http.ErrAbortHandler)
		}
	}
}

// remoteCache fetches and caches remote code by URL; concurrent misses
// for one URL share a single fetch. Failures are not cached.
type remoteCache struct {
	client   *http.Client
	maxBytes int64
	now      func() time.Time

	mu sync.Mutex
	m  map[string]*remoteEntry
}

type remoteEntry struct {
	done      chan struct{} // closed when the fields below are set
	code      string
	hash      string
	err       error
	fetchedAt time.Time
}

func newRemoteCache(maxBytes int64, now func() time.Time, allowPrivate bool) *remoteCache {
	return &remoteCache{
		client:   remoteCodeClient(allowPrivate),
		maxBytes: maxBytes,
		now:      now,
		m:        make(map[string]*remoteEntry),
	}
}

func (r *remoteCache) get(u string) (code, hash string, err error) {
	r.mu.Lock()
	if e := r.m[u]; e != nil {
		select {
		case <-e.done:
			if e.err == nil && r.now().Sub(e.fetchedAt) < remoteCodeTTL {
				r.mu.Unlock()
				return e.code, e.hash, nil
			}
		default:
			r.mu.Unlock()
			<-e.done // bounded by the fetch timeout
			return e.code, e.hash, e.err
		}
	}
	if len(r.m) >= remoteCacheMax {
		r.sweepLocked()
	}
	e := &remoteEntry{done: make(chan struct{})}
	r.m[u] = e
	r.mu.Unlock()

	e.code, e.hash, e.err = r.fetch(u)
	e.fetchedAt = r.now()
	close(e.done)
	if e.err != nil {
		r.mu.Lock()
		if r.m[u] == e {
			delete(r.m, u)
		}
		r.mu.Unlock()
	}
	return e.code, e.hash, e.err
}

// sweepLocked drops expired entries, or everything finished when the
// cache is still full.
func (r *remoteCache) sweepLocked() {
	now := r.now()
	for u, e := range r.m {
		select {
		case <-e.done:
			if now.Sub(e.fetchedAt) >= remoteCodeTTL {
				delete(r.m, u)
			}
		default:
		}
	}
	if len(r.m) >= remoteCacheMax {
		for u, e := range r.m {
			select {
			case <-e.done:
				delete(r.m, u)
			default:
			}
		}
	}
}

func (r *remoteCache) fetch(u string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), remoteFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", "", fmt.Errorf("remote code: %w", err)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("remote code: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("remote code: status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, r.maxBytes+1))
	if err != nil {
		return "", "", fmt.Errorf("remote code: %w", err)
	}
	if int64(len(b)) > r.maxBytes {
		return "", "", fmt.Errorf("remote code: larger than %d bytes", r.maxBytes)
	}
	if len(b) == 0 {
		return "", "", errors.New("remote code: empty")
	}
	return string(b), hashCode(b), nil
}
