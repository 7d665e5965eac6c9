package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox/logstream"
)

// fakeCluster is a Cluster whose peer credential is "peer-secret".
type fakeCluster struct{ followed []string }

func (f *fakeCluster) Members(context.Context) ([]types.Member, error) {
	return []types.Member{{NodeID: "a", URL: "http://a"}, {NodeID: "b", URL: "http://b"}}, nil
}

func (f *fakeCluster) FollowPeers(_ context.Context, container string, _ logstream.Backlog, _ bool, push func([]byte)) <-chan struct{} {
	f.followed = append(f.followed, container)
	push([]byte(`{"msg":"from a peer"}`))
	done := make(chan struct{})
	close(done)
	return done
}

func (f *fakeCluster) PeerAuthorized(r *http.Request) bool {
	return r.Header.Get("Authorization") == "Bearer peer-secret"
}

func TestNodeHeaderOnEveryResponse(t *testing.T) {
	e := newEnv(t, Config{NodeID: "node-7"})
	for _, p := range []string{"/healthz", "/api/webtask/test", "/api/nope", "/api/run/test/missing"} {
		w := e.do("GET", p, e.master, "")
		if got := w.Header().Get(HeaderNode); got != "node-7" {
			t.Errorf("GET %s (%d): X-Wt-Node %q, want node-7", p, w.Code, got)
		}
	}
	if w := newEnv(t, Config{}).do("GET", "/healthz", "", ""); w.Header().Get(HeaderNode) != "" {
		t.Errorf("X-Wt-Node without a node id: %q", w.Header().Get(HeaderNode))
	}
}

func TestClusterRoutes(t *testing.T) {
	fc := &fakeCluster{}
	e := buildEnv(t, envOptions{deps: func(_ *env, d *Deps) { d.Cluster = fc }})

	// The member list: master only.
	wantError(t, e.do("GET", "/api/admin/cluster/members", e.tenant, ""), 403, "")
	if m := decode[[]types.Member](t, e.do("GET", "/api/admin/cluster/members", e.master, "")); len(m) != 2 || m[0].NodeID != "a" {
		t.Fatalf("members %+v", m)
	}
	// The peer log route: the peer credential only, never an API token.
	wantError(t, e.do("GET", "/api/cluster/logs/test?follow=0", e.master, ""), 401, "peer credential required")
	wantError(t, e.do("GET", "/api/cluster/logs/test?follow=0", "wrong", ""), 401, "peer credential required")
	e.srv.logs.Publish("test", logstream.Record{Msg: "local line"})
	w := e.do("GET", "/api/cluster/logs/test?follow=0&max=10", "peer-secret", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "local line") {
		t.Fatalf("peer stream: %d %s", w.Code, w.Body)
	}
	if len(fc.followed) != 0 {
		t.Fatal("a peer stream was merged from peers again (loops)")
	}
	wantError(t, e.do("GET", "/api/cluster/logs/test?max=x", "peer-secret", ""), 400, "")
	// A reader's stream merges the peers' lines.
	w = e.do("GET", "/api/logs/tenant/test?follow=0", e.master, "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "from a peer") || !strings.Contains(w.Body.String(), "local line") {
		t.Fatalf("reader stream: %d %s", w.Code, w.Body)
	}
	// Single host: no cluster routes.
	single := newEnv(t, Config{})
	wantError(t, single.do("GET", "/api/admin/cluster/members", single.master, ""), 404, "this daemon is not a cluster member")
	wantError(t, single.do("GET", "/api/cluster/logs/test", "peer-secret", ""), 404, "this daemon is not a cluster member")
}
