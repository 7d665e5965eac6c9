package cluster

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
)

// Change kinds of the store's change feed (NOTIFY webtaskd_changes with
// "<kind>:<id>"; the id names what changed, never its content).
const (
	KindWebtask    = "webtask"    // id container/name
	KindRevocation = "revocation" // id jti
	KindKeys       = "keys"       // id kid, or * (all)
	KindLimits     = "limits"     // id container
	KindCron       = "cron"       // id container/name
	KindContainer  = "container"  // id container
	// KindListening is not a change: the store reports it (id "") once
	// its LISTEN is in place; changes made before may have been missed.
	KindListening = "listening"
)

// Listener is the store's change feed (*store.Store on PostgreSQL). Listen
// delivers each change to fn, KindListening first, once the LISTEN is in
// place, until the connection is lost (its error) or ctx ends.
type Listener interface {
	Listen(ctx context.Context, fn func(kind, id string)) error
}

// Handlers apply the feed's changes to this daemon's caches. Every field
// is required.
type Handlers struct {
	// Webtask drops one webtask from the caches.
	Webtask func(container, name string)
	// Revocations reloads the revoked token set.
	Revocations func(ctx context.Context) error
	// Keys reloads the key sets (kid "*": all).
	Keys func(ctx context.Context, kid string) error
	// Limits applies a container's new limits (its next call gets a
	// sandbox with them).
	Limits func(container string)
	// Cron reloads one cron job into the scheduler (or removes it).
	Cron func(ctx context.Context, container, name string)
	// Container drops everything cached of a container.
	Container func(container string)
	// Resync drops every cache and reloads revocations, key sets and cron
	// jobs: after the feed was (re)connected, and while it is down.
	Resync func(ctx context.Context) error
	// Connected tells when the feed goes down (false: from now on the
	// caches cannot be trusted) and when it is listening again (true,
	// after its Resync).
	Connected func(up bool)
}

// Feed timing.
const (
	// feedRetryMin and feedRetryMax bound the wait between two attempts
	// to listen again.
	feedRetryMin = 100 * time.Millisecond
	feedRetryMax = 2 * time.Second
	// feedHandleTimeout bounds applying one change.
	feedHandleTimeout = 5 * time.Second
)

// Feed consumes the change feed. While it is down (the LISTEN connection
// lost), the caches are dropped and revocations reloaded from the database
// before every attempt to listen again, so that nothing stale is served
// for longer than feedRetryMax.
type Feed struct {
	l   Listener
	h   Handlers
	log *slog.Logger
	up  atomic.Bool
}

// NewFeed returns a feed applying l's changes through h.
func NewFeed(l Listener, h Handlers, log *slog.Logger) *Feed {
	return &Feed{l: l, h: h, log: log}
}

// Connected reports whether the feed is listening.
func (f *Feed) Connected() bool { return f.up.Load() }

// Run listens until ctx ends, listening again after every loss.
func (f *Feed) Run(ctx context.Context) {
	wait := feedRetryMin
	for ctx.Err() == nil {
		start := time.Now()
		err := f.l.Listen(ctx, func(kind, id string) { f.apply(ctx, kind, id) })
		wasUp := f.up.Swap(false)
		if ctx.Err() != nil {
			return
		}
		if wasUp {
			f.h.Connected(false)
			f.log.Warn("change feed lost; caches dropped until it is back", "err", err)
		}
		f.resync(ctx) // no stale cache while down
		if time.Since(start) > feedRetryMax {
			wait = feedRetryMin
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, feedRetryMax)
	}
}

func (f *Feed) resync(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, feedHandleTimeout)
	defer cancel()
	if err := f.h.Resync(ctx); err != nil && ctx.Err() == nil {
		f.log.Warn("cluster resync failed", "err", err)
	}
}

// apply applies one change.
func (f *Feed) apply(ctx context.Context, kind, id string) {
	ctx, cancel := context.WithTimeout(ctx, feedHandleTimeout)
	defer cancel()
	var err error
	switch kind {
	case KindListening:
		// What changed before is caught up once; every change from now
		// on arrives.
		f.resync(ctx)
		if !f.up.Swap(true) {
			f.h.Connected(true)
			f.log.Debug("change feed listening")
		}
		return
	case KindWebtask:
		if c, n, ok := strings.Cut(id, "/"); ok {
			f.h.Webtask(c, n)
		}
	case KindRevocation:
		err = f.h.Revocations(ctx)
	case KindKeys:
		err = f.h.Keys(ctx, id)
	case KindLimits:
		f.h.Limits(id)
	case KindCron:
		if c, n, ok := strings.Cut(id, "/"); ok {
			f.h.Cron(ctx, c, n)
		}
	case KindContainer:
		f.h.Container(id)
	default:
		f.log.Debug("unknown change kind", "kind", kind)
	}
	if err != nil {
		// The change may be lost: catch up on everything instead.
		f.log.Warn("applying a change failed; resynchronising", "kind", kind, "err", err)
		f.resync(ctx)
	}
}
