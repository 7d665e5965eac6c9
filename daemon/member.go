package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/daemon/cluster"
	"github.com/webtaskd/webtaskd/daemon/cron"
)

// errClusterBackup answers wtctl backup on a cluster member: an archive of
// one member's files would be partial.
var errClusterBackup = errdefs.New(errdefs.ErrInvalid, "this daemon is a cluster member: its store is PostgreSQL, "+
	"so back up the database with pg_dump (e.g. pg_dump -Fc -f webtaskd.dump DBNAME) and keep a copy of the "+
	"key-encryption key file (--key-encryption-key-file) apart from it: the dump alone opens nothing (docs/CLUSTER.md)")

// cronCluster is the cron scheduler's cluster configuration (nil on a
// single host).
func (d *Daemon) cronCluster() *cron.Cluster {
	if !d.store.IsShared() {
		return nil
	}
	return &cron.Cluster{
		Claims: d.store, Node: d.cfg.Cluster.NodeID, RunURL: d.cfg.Cluster.ClusterURL,
		Client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
	}
}

// newMember builds this daemon's cluster membership (nil on a single
// host); startMember starts it once the daemon listens.
func (d *Daemon) newMember() (*cluster.Member, error) {
	if !d.store.IsShared() {
		return nil, nil
	}
	return cluster.NewMember(d.cfg.Cluster, d.store, d.log.With("component", "cluster"), d.cfg.Clock)
}

// startMember sends the first heartbeat and starts consuming the change
// feed.
func (d *Daemon) startMember(ctx context.Context) error {
	if d.member == nil {
		return nil
	}
	if err := d.member.Start(ctx, d.cfg.Cluster.AdvertiseFor(d.ln.Addr().String())); err != nil {
		return fmt.Errorf("cluster heartbeat: %w", err)
	}
	feed := cluster.NewFeed(d.store, d.feedHandlers(), d.log.With("component", "feed"))
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
func (d *Daemon) feedHandlers() cluster.Handlers {
	ss := d.store
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
		// While the feed is down, revocations are checked against the
		// database on every request.
		Connected: func(up bool) { ss.CheckRevocationsInDB(!up) },
		Resync: func(ctx context.Context) error {
			ss.InvalidateAll()
			if err := errors.Join(ss.ReloadRevocations(ctx), ss.ReloadKeys(ctx)); err != nil {
				return err
			}
			return errors.Join(d.ensureMasterToken(), d.cron.Reload(ctx))
		},
	}
}
