package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/daemon/cluster"
	"github.com/webtaskd/webtaskd/daemon/cron"
)

// sharedStore is what a cluster member needs of the store beyond what a
// single host does (*store.Store on PostgreSQL).
type sharedStore interface {
	cluster.Listener
	cron.Claims
	IsShared() bool
	InvalidateAll()
	InvalidateWebtask(container, name string)
	ReloadRevocations(ctx context.Context) error
	ReloadKeys(ctx context.Context) error
	Heartbeat(ctx context.Context, node, url string) error
	Members(ctx context.Context, since time.Time) ([]types.Member, error)
}

// errClusterBackup answers wtctl backup on a cluster member: an archive of
// one member's files would be partial.
var errClusterBackup = errdefs.New(errdefs.ErrInvalid, "this daemon is a cluster member: its store is PostgreSQL, "+
	"so back up the database with pg_dump (e.g. pg_dump -Fc -f webtaskd.dump DBNAME) and keep a copy of the "+
	"key-encryption key file (--key-encryption-key-file) apart from it: the dump alone opens nothing (docs/CLUSTER.md)")

// shared returns the store as a shared store, or an error when it is not
// one.
func (d *Daemon) shared() (sharedStore, error) {
	ss, ok := any(d.store).(sharedStore)
	if !ok || !ss.IsShared() {
		return nil, errors.New("cluster mode needs the PostgreSQL store")
	}
	return ss, nil
}

// cronCluster is the cron scheduler's cluster configuration (nil on a
// single host).
func (d *Daemon) cronCluster() (*cron.Cluster, error) {
	if !d.cfg.Cluster.Shared() {
		return nil, nil
	}
	ss, err := d.shared()
	if err != nil {
		return nil, err
	}
	return &cron.Cluster{
		Claims: ss, Node: d.cfg.Cluster.NodeID, RunURL: d.cfg.Cluster.ClusterURL,
		Client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
	}, nil
}

// newMember builds this daemon's cluster membership (nil on a single
// host); startMember starts it once the daemon listens.
func (d *Daemon) newMember() (*cluster.Member, error) {
	if !d.cfg.Cluster.Shared() {
		return nil, nil
	}
	ss, err := d.shared()
	if err != nil {
		return nil, err
	}
	return cluster.NewMember(d.cfg.Cluster, ss, d.log.With("component", "cluster"), d.cfg.Clock)
}

// startMember sends the first heartbeat and starts consuming the change
// feed.
func (d *Daemon) startMember(ctx context.Context) error {
	if d.member == nil {
		return nil
	}
	ss, _ := d.shared()
	if err := d.member.Start(ctx, d.cfg.Cluster.AdvertiseFor(d.ln.Addr().String())); err != nil {
		return fmt.Errorf("cluster heartbeat: %w", err)
	}
	feed := cluster.NewFeed(ss, d.feedHandlers(ss), d.log.With("component", "feed"))
	fctx, cancel := context.WithCancel(context.Background())
	d.feedStop, d.feedDone = cancel, make(chan struct{})
	go func() {
		defer close(d.feedDone)
		feed.Run(fctx)
	}()
	return nil
}

// stopMember stops the feed and the heartbeat (idempotent).
func (d *Daemon) stopMember() {
	if d.feedStop != nil {
		d.feedStop()
		<-d.feedDone
		d.feedStop = nil
	}
	if d.member != nil {
		d.member.Close()
	}
}

// feedHandlers apply the other members' changes to this daemon.
func (d *Daemon) feedHandlers(ss sharedStore) cluster.Handlers {
	return cluster.Handlers{
		Webtask:     ss.InvalidateWebtask,
		Revocations: ss.ReloadRevocations,
		Keys: func(ctx context.Context, _ string) error {
			if err := ss.ReloadKeys(ctx); err != nil {
				return err
			}
			return d.ensureMasterToken()
		},
		Limits: func(container string) { d.mgr.Recycle(container) },
		Cron: func(ctx context.Context, container, name string) {
			if err := d.cron.Sync(ctx, container, name); err != nil {
				d.log.Warn("cron job not synchronised", "container", container, "name", name, "err", err)
			}
		},
		Container: func(string) { ss.InvalidateAll() },
		Resync: func(ctx context.Context) error {
			ss.InvalidateAll()
			return errors.Join(ss.ReloadRevocations(ctx), ss.ReloadKeys(ctx), d.cron.Reload(ctx))
		},
	}
}
