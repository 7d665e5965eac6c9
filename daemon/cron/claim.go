package cron

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/webtaskd/webtaskd/store"
)

// HeaderTick carries, on every cron run request, the tick the run belongs
// to (RFC 3339 with nanoseconds, UTC): with a cluster's exactly-once claims it names one
// run, so a webtask can use it as an idempotency key.
const HeaderTick = "X-Wt-Cron-Tick"

// Claims is the cluster-wide claim of cron ticks (*store.Store on
// PostgreSQL). Every member schedules every job; a tick runs only on the
// member whose claim wins.
type Claims interface {
	// ClaimCronTick claims tick of container/name for node, for lease: one
	// conditional UPDATE (the job's last claimed tick is before tick), so
	// exactly one claimer of a tick wins, and a tick older than one already
	// claimed is never won.
	ClaimCronTick(ctx context.Context, container, name string, tick time.Time, node string, lease time.Duration) (bool, error)
	// ExpireCronClaims records, as an error result, each claim whose lease
	// ended before now without a result (its claimer died or hung); it
	// returns how many.
	ExpireCronClaims(ctx context.Context, now time.Time) (int, error)
}

// Cluster configures a scheduler that shares its jobs with the other
// members of a cluster.
type Cluster struct {
	// Claims decides which member runs a tick. Required.
	Claims Claims
	// Node is this member's node id (the claim's holder).
	Node string
	// RunURL, when set, is the load balancer's base URL: a claimed tick
	// runs through it (POST RunURL/api/run/{c}/{n}), so it lands on the
	// member where the container is warm. Empty: in-process, here.
	RunURL string
	// Client sends runs to RunURL (default: a client without timeout; the
	// run's context bounds it).
	Client *http.Client
	// ExpireEvery is how often this member expires dead claims (default
	// 5s).
	ExpireEvery time.Duration
}

// claimTimeout bounds one claim.
const claimTimeout = 5 * time.Second

// lease is how long a claim holds before it is recorded as failed: the
// run's own bound, and a margin for recording its result.
func (s *Scheduler) lease() time.Duration { return s.cfg.RunTimeout + recordTimeout + 10*time.Second }

// claim reports whether this member runs tick of job k: always without a
// cluster; with one, when its claim wins. An error loses: a tick is
// skipped rather than run twice.
func (s *Scheduler) claim(k key, tick time.Time) bool {
	cl := s.cfg.Cluster
	if cl == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(s.runCtx, claimTimeout)
	defer cancel()
	won, err := cl.Claims.ClaimCronTick(ctx, k.container, k.name, tick, cl.Node, s.lease())
	if err != nil {
		s.log.Warn("cron tick not claimed: the claim failed; this member skips it", "container", k.container, "name", k.name, "tick", tick, "err", err)
		return false
	}
	return won
}

// expireLoop records the runs of dead claimers, until Stop.
func (s *Scheduler) expireLoop(every time.Duration) {
	defer close(s.expireDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.runCtx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.runCtx, claimTimeout)
		n, err := s.cfg.Cluster.Claims.ExpireCronClaims(ctx, s.cfg.Now())
		cancel()
		if err != nil && s.runCtx.Err() == nil {
			s.log.Warn("cron: expiring dead claims failed", "err", err)
		} else if n > 0 {
			s.log.Warn("cron: runs whose claimer died recorded as errors", "runs", n)
		}
	}
}

// callRemote POSTs body to path through the cluster's load balancer.
func (s *Scheduler) callRemote(ctx context.Context, path string, body []byte, hdr http.Header, res *store.CronResult) {
	cl := s.cfg.Cluster
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(cl.RunURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		res.CompletedAt, res.Type, res.Body = s.cfg.Now().UTC(), store.CronError, "cron: "+err.Error()
		return
	}
	req.Header = hdr
	if s.cfg.Host != "" {
		req.Host = s.cfg.Host
	}
	client := cl.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		res.CompletedAt, res.Type, res.Body = s.cfg.Now().UTC(), store.CronError, fmt.Sprintf("cron: the run through the cluster URL failed: %v", err)
		return
	}
	defer resp.Body.Close()
	rw := newRecorder(s.cfg.MaxResultBodyBytes)
	for k, v := range resp.Header {
		rw.header[k] = v
	}
	rw.WriteHeader(resp.StatusCode)
	_, err = io.Copy(rw, resp.Body)
	s.fill(res, rw, err != nil) // a cut-off body is an error, as in-process
}
