package daemon

import (
	"context"
	"time"

	"github.com/webtaskd/webtaskd/api"
)

// gcInterval is how often the automatic collection runs (when
// Config.CodeBlobRetention is set).
const gcInterval = 6 * time.Hour

// startGC collects, every gcInterval and once at start, the code blobs no
// stored webtask names and the module versions no stored webtask declares
// that are older than CodeBlobRetention (docs/OPERATIONS.md,
// "Housekeeping"). It stops when Close closes d.gcStop.
func (d *Daemon) startGC() {
	if d.cfg.CodeBlobRetention <= 0 {
		close(d.gcDone)
		return
	}
	st, mods := d.store, d.mods
	now := d.cfg.Clock
	if now == nil {
		now = time.Now
	}
	go func() {
		defer close(d.gcDone)
		t := time.NewTicker(gcInterval)
		defer t.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			cutoff := now().Add(-d.cfg.CodeBlobRetention)
			n, err := st.CollectCodeBlobs(ctx, cutoff)
			if err != nil {
				d.log.Warn("code blob collection failed", "err", err)
			} else if n > 0 {
				d.log.Info("code blobs collected", "removed", n, "older_than", d.cfg.CodeBlobRetention.String())
			}
			n, err = api.CollectModules(ctx, st, mods, cutoff)
			cancel()
			if err != nil {
				d.log.Warn("module collection failed", "err", err)
			} else if n > 0 {
				d.log.Info("unused modules collected", "removed", n, "older_than", d.cfg.CodeBlobRetention.String())
			}
			select {
			case <-d.gcStop:
				return
			case <-t.C:
			}
		}
	}()
}

// stopGC ends the collection loop and waits for it (idempotent).
func (d *Daemon) stopGC() {
	d.gcStopOnce.Do(func() { close(d.gcStop) })
	if d.gcStarted {
		<-d.gcDone
	}
}
