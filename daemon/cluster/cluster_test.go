package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/sandbox/logstream"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func writeKEK(t *testing.T, n int, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(p, make([]byte, n), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigValidate(t *testing.T) {
	good := writeKEK(t, KEKBytes, 0o600)
	dsn := "postgres://u:secretpw@db:5432/w"
	for _, c := range []struct {
		name string
		cfg  Config
		want string // "" valid
	}{
		{"single host", Config{}, ""},
		{"sqlite", Config{Store: "sqlite"}, ""},
		{"postgres", Config{Store: dsn, KEKFile: good}, ""},
		{"no kek", Config{Store: dsn}, "needs --key-encryption-key-file"},
		{"short kek", Config{Store: dsn, KEKFile: writeKEK(t, 16, 0o600)}, "holds 16 bytes"},
		{"open kek", Config{Store: dsn, KEKFile: writeKEK(t, KEKBytes, 0o644)}, "readable by group or others"},
		{"missing kek", Config{Store: dsn, KEKFile: "/nonexistent/kek"}, "no such file"},
		{"kek without postgres", Config{KEKFile: good}, "--key-encryption-key-file is for cluster mode"},
		{"cluster url without postgres", Config{ClusterURL: "http://lb:1"}, "--cluster-url is for cluster mode"},
		{"other store", Config{Store: "mysql://x"}, "want sqlite"},
		{"bad advertise", Config{Store: dsn, KEKFile: good, AdvertiseURL: "lb:1"}, "--advertise-url"},
		{"bad node id", Config{NodeID: "a b"}, "--node-id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			err := cfg.Validate("127.0.0.1:8721")
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if cfg.NodeID == "" {
					t.Error("no default node id")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate: %v, want an error saying %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secretpw") {
				t.Fatalf("the error shows the DSN's password: %v", err)
			}
		})
	}
	// The advertise URL defaults to the listen address, and is required
	// when that names no host.
	cfg := Config{Store: dsn, KEKFile: good}
	if err := cfg.Validate("10.0.0.7:8721"); err != nil || cfg.AdvertiseURL != "http://10.0.0.7:8721" || len(cfg.KEK) != KEKBytes {
		t.Fatalf("Validate: %v, advertise %q, kek %d bytes", err, cfg.AdvertiseURL, len(cfg.KEK))
	}
	cfg = Config{Store: dsn, KEKFile: good}
	if err := cfg.Validate("0.0.0.0:8721"); err == nil || !strings.Contains(err.Error(), "--advertise-url") {
		t.Fatalf("listen 0.0.0.0 without --advertise-url: %v", err)
	}
}

func TestPeerCredential(t *testing.T) {
	k1, k2 := make([]byte, KEKBytes), make([]byte, KEKBytes)
	k2[0] = 1
	c1, _ := PeerCredential(k1)
	c1b, _ := PeerCredential(k1)
	c2, _ := PeerCredential(k2)
	if c1 != c1b || c1 == c2 || len(c1) != 64 {
		t.Fatalf("credentials %q %q %q: want deterministic, per key, 32 bytes hex", c1, c1b, c2)
	}
	if strings.Contains(c1, fmt.Sprintf("%x", k1)) {
		t.Fatal("the credential shows the key")
	}
	auth := peerAuth{want: []byte(c1)}
	for h, want := range map[string]bool{"Bearer " + c1: true, "Bearer " + c2: false, c1: false, "": false, "Bearer ": false} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", h)
		if got := auth.Authorized(r); got != want {
			t.Errorf("Authorization %q: %v, want %v", h, got, want)
		}
	}
}

// fakeListener delivers scripted sessions: each session is the changes
// delivered before the connection is "lost".
type fakeListener struct {
	mu       sync.Mutex
	sessions [][][2]string
	calls    int
	done     chan struct{}
}

func (f *fakeListener) Listen(ctx context.Context, fn func(kind, id string)) error {
	f.mu.Lock()
	i := f.calls
	f.calls++
	f.mu.Unlock()
	if i >= len(f.sessions) {
		select {
		case <-f.done:
		default:
			close(f.done)
		}
		<-ctx.Done()
		return ctx.Err()
	}
	for _, ch := range f.sessions[i] {
		fn(ch[0], ch[1])
	}
	return errors.New("connection lost")
}

func TestFeedAppliesChangesAndResyncs(t *testing.T) {
	var mu sync.Mutex
	var log []string
	rec := func(s string) { mu.Lock(); log = append(log, s); mu.Unlock() }
	h := Handlers{
		Webtask:     func(c, n string) { rec("webtask " + c + "/" + n) },
		Revocations: func(context.Context) error { rec("revocations"); return nil },
		Keys:        func(_ context.Context, kid string) error { rec("keys " + kid); return nil },
		Limits:      func(c string) { rec("limits " + c) },
		Cron:        func(_ context.Context, c, n string) { rec("cron " + c + "/" + n) },
		Container:   func(c string) { rec("container " + c) },
		Resync:      func(context.Context) error { rec("resync"); return nil },
		Connected:   func(up bool) { rec(fmt.Sprint("up ", up)) },
	}
	l := &fakeListener{done: make(chan struct{}), sessions: [][][2]string{
		{{KindListening, ""}, {KindWebtask, "c/n"}, {KindRevocation, "j1"}, {KindKeys, "*"}, {KindLimits, "c"}, {KindCron, "c/job"}, {KindContainer, "c"}, {"bogus", "x"}},
		{}, // connect failure: no listening
		{{KindListening, ""}, {KindWebtask, "d/m"}},
	}}
	f := NewFeed(l, h, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the feed did not listen again after losses")
	}
	cancel()
	<-done
	want := []string{
		"resync", "up true", "webtask c/n", "revocations", "keys *", "limits c", "cron c/job", "container c",
		"up false", "resync", // lost: caches dropped
		"resync", // the failed attempt
		"resync", "up true", "webtask d/m", "up false", "resync",
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(log, ", ") != strings.Join(want, ", ") {
		t.Fatalf("applied:\n %s\nwant:\n %s", strings.Join(log, ", "), strings.Join(want, ", "))
	}
}

// fakeMembers is a MemberStore in memory.
type fakeMembers struct {
	mu sync.Mutex
	m  map[string]types.Member
}

func (f *fakeMembers) Heartbeat(_ context.Context, node, url string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[node] = types.Member{NodeID: node, URL: url, HeartbeatAt: time.Now()}
	return nil
}

func (f *fakeMembers) Members(_ context.Context, since time.Duration) ([]types.Member, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []types.Member
	for _, m := range f.m {
		if time.Since(m.HeartbeatAt) <= since {
			out = append(out, m)
		}
	}
	return out, nil
}

// TestFollowPeers: a member merges each peer's stream (authenticated with
// the peer credential) into the reader's queue, in each peer's order.
func TestFollowPeers(t *testing.T) {
	kek := make([]byte, KEKBytes)
	cred, _ := PeerCredential(kek)
	peer := func(name string, n int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+cred || r.URL.Path != "/api/cluster/logs/ctr" || r.URL.Query().Get("follow") != "0" {
				http.Error(w, "no", http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, ":ok\n\nevent: ping\ndata: {}\n\n")
			for i := range n {
				fmt.Fprintf(w, "data: {\"msg\":\"%s %d\"}\n\n", name, i)
			}
			fmt.Fprint(w, "data: line one\ndata: line two\n\n") // not one record: dropped
		}))
	}
	p1, p2 := peer("p1", 50), peer("p2", 50)
	defer p1.Close()
	defer p2.Close()
	ms := &fakeMembers{m: map[string]types.Member{}}
	_ = ms.Heartbeat(context.Background(), "p1", p1.URL)
	_ = ms.Heartbeat(context.Background(), "p2", p2.URL)
	m, err := NewMember(Config{NodeID: "self", KEK: kek, HeartbeatInterval: time.Hour, MemberTTL: 2 * time.Hour}, ms, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background(), "http://self"); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var mu sync.Mutex
	var got []string
	done := m.FollowPeers(context.Background(), "ctr", logstream.Backlog{Max: 10}, false, func(enc []byte) {
		mu.Lock()
		got = append(got, string(enc))
		mu.Unlock()
	})
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("peer streams did not end")
	}
	next := map[string]int{}
	for _, g := range got {
		var name string
		var i int
		if _, err := fmt.Sscanf(strings.Trim(g, `{}"msg:`), "%s %d", &name, &i); err != nil {
			t.Fatalf("unexpected record %q", g)
		}
		if i != next[name] {
			t.Fatalf("%s: record %d after %d: out of order", name, i, next[name])
		}
		next[name]++
	}
	if next["p1"] != 50 || next["p2"] != 50 || len(got) != 100 {
		t.Fatalf("got %d records (%v), want 50 of each peer", len(got), next)
	}
	// This member itself is never streamed from.
	if peers, _ := m.peers(); len(peers) != 2 {
		t.Fatalf("peers %v", peers)
	}
}
