package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// The meta keys naming a webtask's compiler and middleware (reference
// §3.5): an npm module (`name` or `name/export`) or the URL of its code.
const (
	MetaCompiler   = "wt-compiler"
	MetaMiddleware = "wt-middleware"
)

// middlewareCompiler is the built-in compiler that runs wt-middleware
// before the webtask's JavaScript.
const middlewareCompiler = "@webtask/middleware-compiler"

// builtinModules are the userspace modules the sandbox runtime provides
// itself (rootfs/agent/builtins): requesting them needs no install, and a
// webtask declaring them gets the built-in.
var builtinModules = map[string]bool{
	middlewareCompiler:                true,
	"@webtask/cron-auth-middleware":   true,
	"@webtask/bearer-auth-middleware": true,
}

// maxExtensionURLs bounds the URLs one webtask's meta may name.
const maxExtensionURLs = 16

// extensionURLs lists the URLs among meta's compiler and middleware specs
// (wt-middleware: a JSON array, else comma-separated).
func extensionURLs(meta map[string]string) []string {
	var specs []string
	if c := strings.TrimSpace(meta[MetaCompiler]); c != "" {
		specs = append(specs, c)
	}
	if m := meta[MetaMiddleware]; m != "" {
		var list []string
		if json.Unmarshal([]byte(m), &list) != nil {
			list = strings.Split(m, ",")
		}
		specs = append(specs, list...)
	}
	var urls []string
	for _, sp := range specs {
		sp = strings.TrimSpace(sp)
		if strings.HasPrefix(sp, "http://") || strings.HasPrefix(sp, "https://") {
			urls = append(urls, sp)
		}
	}
	return urls
}

// checkExtensions refuses, at create time, compiler and middleware URLs
// the daemon would not fetch: https only, http with
// --allow-private-code-urls.
func (s *Server) checkExtensions(meta map[string]string) error {
	urls := extensionURLs(meta)
	if len(urls) > maxExtensionURLs {
		return errdefs.Errorf(errdefs.ErrInvalid, "at most %d compiler and middleware URLs", maxExtensionURLs)
	}
	for _, u := range urls {
		if strings.HasPrefix(u, "http://") && !s.cfg.AllowPrivateCodeURLs {
			return errdefs.Errorf(errdefs.ErrInvalid, "compiler and middleware URLs must be https (http needs --allow-private-code-urls)")
		}
	}
	return nil
}

// fetchExtensions fills req.Extensions with the code of meta's compiler
// and middleware URLs (fetched and cached by content like remote webtask
// code, under the same address rules). A webtask with a compiler gets a
// code hash standing for its code, the URLs' code and this webtask
// version (its token: what a compiler saw of secrets and meta), so the
// agent compiles once per webtask version and again when anything of it
// changes.
func (s *Server) fetchExtensions(ctx context.Context, req *agent.Request, meta map[string]string) error {
	compiler := strings.TrimSpace(meta[MetaCompiler])
	if compiler == "" || req.Code == "" {
		return nil
	}
	if err := s.checkExtensions(meta); err != nil {
		return err
	}
	h := sha256.New()
	h.Write([]byte(req.CodeHash + "\x02" + compiler + "\x00" + meta[MetaMiddleware] + "\x00" + req.Authority))
	urls := extensionURLs(meta)
	if len(urls) == 0 {
		req.CodeHash = hex.EncodeToString(h.Sum(nil))
		return nil
	}
	req.Extensions = make(map[string]string, len(urls))
	for _, u := range urls {
		code, hash, err := s.remote.get(u)
		if err != nil {
			s.log.Warn("fetching compiler or middleware code failed", "req_id", req.ReqID, "err", err)
			return errdefs.Errorf(errdefs.ErrUpstream, "unable to fetch the compiler or middleware code from its url")
		}
		req.Extensions[u] = code
		h.Write([]byte("\x01" + u + "\x00" + hash))
	}
	req.CodeHash = hex.EncodeToString(h.Sum(nil))
	return nil
}
