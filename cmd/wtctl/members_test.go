package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
)

// fakeMember answers the admin views of one cluster member, whose node
// id it names; members (set on the first) is the member list.
func fakeMember(t *testing.T, node string, members *[]types.Member) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer master" {
			w.WriteHeader(401)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/admin/cluster/members":
			if members == nil {
				w.WriteHeader(404)
				_, _ = w.Write([]byte(`{"code":404,"message":"this daemon is not a cluster member","req_id":"x"}`))
				return
			}
			_ = json.NewEncoder(w).Encode(*members)
		case "/api/admin/sandboxes":
			_ = json.NewEncoder(w).Encode([]types.SandboxInfo{{ID: "wt-" + node, Container: "c-" + node, State: types.SandboxRunning, LastUsedAt: time.Now()}})
		case "/healthz":
			_, _ = w.Write([]byte(`{"status":"ok"}`))
		case "/api/admin/status":
			_, _ = w.Write([]byte(`{"status":"ok","fleet":{"pool_target":2,"pool_ready":1}}`))
		default:
			w.WriteHeader(404)
		}
	}))
}

func runWtctl(t *testing.T, url string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := NewMain(&out, &errOut).Run(context.Background(), append([]string{"--url", url, "--token", "master"}, args...))
	return out.String(), errOut.String(), err
}

// TestFanOutOverMembers: sandboxes and status ask every member the
// daemon at --url lists, label each line with its node, and report a
// member that does not answer without hiding the others.
func TestFanOutOverMembers(t *testing.T) {
	var members []types.Member
	a := fakeMember(t, "a", &members)
	defer a.Close()
	b := fakeMember(t, "b", nil)
	defer b.Close()
	members = []types.Member{{NodeID: "a", URL: a.URL}, {NodeID: "b", URL: b.URL}, {NodeID: "gone", URL: "http://127.0.0.1:1"}}

	out, errOut, err := runWtctl(t, a.URL, "sandboxes")
	if err == nil || !strings.Contains(err.Error(), "1 of 3 members did not answer") || !strings.Contains(errOut, "member gone") {
		t.Fatalf("a member down: err %v, stderr %q", err, errOut)
	}
	for _, want := range []string{"NODE", "a     wt-a", "b     wt-b"} {
		if !strings.Contains(out, want) {
			t.Errorf("sandboxes output lacks %q:\n%s", want, out)
		}
	}
	out, _, _ = runWtctl(t, a.URL, "sandboxes", "--json")
	var list []struct {
		Node string `json:"node"`
		ID   string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 || list[0].Node != "a" || list[1].ID != "wt-b" {
		t.Fatalf("sandboxes --json: %v %s", err, out)
	}
	out, _, _ = runWtctl(t, a.URL, "status")
	if !strings.Contains(out, "member a: ok") || !strings.Contains(out, "member b: ok") || !strings.Contains(out, "pool: 1/2 ready") {
		t.Fatalf("status:\n%s", out)
	}

	// A single host (no member list): the output of old, no NODE column.
	out, _, err = runWtctl(t, b.URL, "sandboxes")
	if err != nil || strings.Contains(out, "NODE") || !strings.Contains(out, "wt-b") {
		t.Fatalf("single host: %v\n%s", err, out)
	}
	out, _, err = runWtctl(t, b.URL, "sandboxes", "--json")
	if err != nil || strings.Contains(out, `"node"`) {
		t.Fatalf("single host --json: %v\n%s", err, out)
	}
	out, _, err = runWtctl(t, b.URL, "status")
	if err != nil || !strings.Contains(out, "daemon: ok") {
		t.Fatalf("single host status: %v\n%s", err, out)
	}
}
