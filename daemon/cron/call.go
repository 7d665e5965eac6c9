package cron

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/webtaskd/webtaskd/store"
)

// call POSTs the job record to the webtask: through the API handler, or
// through the cluster's load balancer (Cluster.RunURL).
func (s *Scheduler) call(ctx context.Context, job *store.CronJob, w *store.Webtask, scheduled, started time.Time) *store.CronResult {
	rec := Record(job, nil, started)
	rec.Token = ""
	body, _ := json.Marshal(rec) // plain strings, maps and times: cannot fail
	path := "/api/run/" + url.PathEscape(job.Container) + "/" + url.PathEscape(job.Name)
	res := &store.CronResult{ScheduledAt: scheduled, StartedAt: started}
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("User-Agent", "webtaskd-cron")
	hdr.Set("Authorization", "Bearer "+RunToken(job, w))
	hdr.Set(HeaderTick, scheduled.UTC().Format(time.RFC3339Nano))
	if cl := s.cfg.Cluster; cl != nil && cl.RunURL != "" {
		s.callRemote(ctx, path, body, hdr, res)
		return res
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, path, bytes.NewReader(body))
	if err != nil {
		res.CompletedAt, res.Type, res.Body = s.cfg.Now().UTC(), store.CronError, "cron: "+err.Error()
		return res
	}
	req.RequestURI = path
	req.Host = s.cfg.Host
	req.RemoteAddr = "127.0.0.1:0"
	req.Header = hdr
	rw := newRecorder(s.cfg.MaxResultBodyBytes)
	s.mu.Lock()
	h := s.h
	s.mu.Unlock()
	s.fill(res, rw, serve(h, rw, req))
	return res
}

// fill completes res from what rw recorded; cutOff (a stream cut off, a
// dropped connection) makes it an error whatever the status.
func (s *Scheduler) fill(res *store.CronResult, rw *recorder, cutOff bool) {
	res.CompletedAt = s.cfg.Now().UTC()
	res.StatusCode = rw.status()
	res.Body = rw.body.String()
	res.Headers = map[string]string{}
	for k, v := range rw.header {
		if len(v) > 0 {
			res.Headers[strings.ToLower(k)] = v[0]
		}
	}
	res.Type = store.CronSuccess
	if res.StatusCode >= 400 || cutOff {
		// A cut-off stream (http.ErrAbortHandler) is what a network
		// caller sees as a dropped connection: an error.
		res.Type = store.CronError
	}
}

// serve runs h in-process; a handler aborting its response
// (http.ErrAbortHandler, as a cut-off stream does) returns true, as net/http
// would drop the connection. Other panics propagate.
func serve(h http.Handler, w http.ResponseWriter, r *http.Request) (aborted bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			aborted = true
		}
	}()
	h.ServeHTTP(w, r)
	return false
}

// recorder is an http.ResponseWriter keeping the status, headers and the
// first max bytes of the body.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
	max    int
}

func newRecorder(max int) *recorder { return &recorder{header: http.Header{}, max: max} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	if room := r.max - r.body.Len(); room > 0 {
		r.body.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}
