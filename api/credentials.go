package api

import (
	"net/url"
	"strings"

	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// What the daemon consumes of a run request never reaches the webtask:
//
//   - webtask_* query parameters (the run's options: webtask_url,
//     webtask_pb, webtask_mb, …) are removed from the URL of every run
//     (ctx.query never had them); webtask_pb=1 and webtask_mb=1 become the
//     request's PB and MB;
//   - for an unnamed run, the caller's credential too: the Authorization
//     header and the key query parameter. A named run is authorized by its
//     stored token, so its caller's Authorization header and key are the
//     webtask's own business (bearer-auth middleware reads them) and pass.

// stripConsumed removes from req (built from the request) what the daemon
// consumed; unnamed tells an unnamed run. It reports the webtask_pb and
// webtask_mb options ("1" turns them on).
func stripConsumed(req *agent.Request, unnamed bool) (pb, mb bool) {
	if unnamed {
		delete(req.Headers, "authorization")
	}
	path, rawQuery, ok := strings.Cut(req.URL, "?")
	if !ok {
		return false, false
	}
	var kept []string
	changed := false
	for _, item := range strings.Split(rawQuery, "&") {
		k, v, _ := strings.Cut(item, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if strings.HasPrefix(k, "webtask_") || (unnamed && k == "key") {
			changed = true
			if uv, err := url.QueryUnescape(v); err == nil {
				v = uv
			}
			switch k {
			case "webtask_pb":
				pb = pb || v == "1"
			case "webtask_mb":
				mb = mb || v == "1"
			}
			continue
		}
		kept = append(kept, item)
	}
	if changed {
		req.URL = path
		if len(kept) > 0 {
			req.URL += "?" + strings.Join(kept, "&")
		}
	}
	return pb, mb
}
