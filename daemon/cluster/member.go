package cluster

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
)

// MemberStore keeps the member list in the shared store.
type MemberStore interface {
	// Heartbeat records that node is alive and reachable at url (now).
	Heartbeat(ctx context.Context, node, url string) error
	// Members lists the members whose last heartbeat is within since of
	// now, ordered by node id.
	Members(ctx context.Context, since time.Duration) ([]types.Member, error)
}

// heartbeatTimeout bounds one heartbeat or member list read.
const heartbeatTimeout = 2 * time.Second

// Member is this daemon as a cluster member: its heartbeat, the live
// member list, the peer credential and the merging of peer log streams.
// It implements api.Cluster.
type Member struct {
	cfg    Config
	store  MemberStore
	log    *slog.Logger
	now    func() time.Time
	auth   peerAuth
	cred   string
	client *http.Client // peer log streams (no overall timeout: they follow)

	mu      sync.Mutex
	url     string         // advertised, set by Start
	members []types.Member // live, from the last heartbeat round
	changed chan struct{}  // closed and replaced when members changes

	stop chan struct{}
	done chan struct{}
}

// NewMember returns the member of a validated cluster configuration.
func NewMember(cfg Config, st MemberStore, log *slog.Logger, now func() time.Time) (*Member, error) {
	if len(cfg.KEK) != KEKBytes {
		return nil, errors.New("cluster: no key-encryption key")
	}
	cred, err := PeerCredential(cfg.KEK)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Member{
		cfg: cfg, store: st, log: log, now: now,
		auth: peerAuth{want: []byte(cred)}, cred: cred,
		client:  &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 5 * time.Second, MaxIdleConnsPerHost: 4}},
		changed: make(chan struct{}),
		stop:    make(chan struct{}), done: make(chan struct{}),
	}, nil
}

// Start sends the first heartbeat (advertising url) and keeps beating
// every HeartbeatInterval until Close.
func (m *Member) Start(ctx context.Context, url string) error {
	m.mu.Lock()
	m.url = url
	m.mu.Unlock()
	if err := m.beat(ctx); err != nil {
		close(m.done)
		return err
	}
	go m.loop()
	m.log.Info("cluster member", "node", m.cfg.NodeID, "advertise_url", url, "cluster_url", m.cfg.ClusterURL)
	return nil
}

// Close stops the heartbeat (idempotent; the member ages out after
// MemberTTL).
func (m *Member) Close() {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
}

func (m *Member) loop() {
	defer close(m.done)
	t := time.NewTicker(m.cfg.HeartbeatInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), heartbeatTimeout)
		err := m.beat(ctx)
		cancel()
		if err != nil && !failing {
			m.log.Warn("cluster heartbeat failed", "err", err)
		} else if err == nil && failing {
			m.log.Info("cluster heartbeat back")
		}
		failing = err != nil
	}
}

// beat writes the heartbeat and refreshes the live member list.
func (m *Member) beat(ctx context.Context) error {
	m.mu.Lock()
	url := m.url
	m.mu.Unlock()
	if err := m.store.Heartbeat(ctx, m.cfg.NodeID, url); err != nil {
		return err
	}
	list, err := m.store.Members(ctx, m.cfg.MemberTTL)
	if err != nil {
		return err
	}
	m.mu.Lock()
	if !sameMembers(m.members, list) {
		close(m.changed)
		m.changed = make(chan struct{})
	}
	m.members = list
	m.mu.Unlock()
	return nil
}

func sameMembers(a, b []types.Member) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].NodeID != b[i].NodeID || a[i].URL != b[i].URL {
			return false
		}
	}
	return true
}

// Members reads the live members from the store.
func (m *Member) Members(ctx context.Context) ([]types.Member, error) {
	return m.store.Members(ctx, m.cfg.MemberTTL)
}

// peers returns the other live members of the last heartbeat round and a
// channel closed when that list changes.
func (m *Member) peers() ([]types.Member, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]types.Member, 0, len(m.members))
	for _, p := range m.members {
		if p.NodeID != m.cfg.NodeID && p.URL != "" {
			out = append(out, p)
		}
	}
	return out, m.changed
}

// PeerAuthorized reports whether r carries the peer credential.
func (m *Member) PeerAuthorized(r *http.Request) bool { return m.auth.Authorized(r) }

// NodeID is this member's node id.
func (m *Member) NodeID() string { return m.cfg.NodeID }
