package daemon

import (
	"context"
	"time"
)

// codeGCInterval is how often the automatic code-blob collection runs
// (when Config.CodeBlobRetention is set).
const codeGCInterval = 6 * time.Hour

// startCodeGC collects, every codeGCInterval and once at start, the code
// blobs no stored webtask names that are older than CodeBlobRetention
// (docs/OPERATIONS.md, "Housekeeping"). It stops when Close closes
// d.gcStop.
func (d *Daemon) startCodeGC() {
	if d.cfg.CodeBlobRetention <= 0 {
		close(d.gcDone)
		return
	}
	st := d.store
	go func() {
		defer close(d.gcDone)
		t := time.NewTicker(codeGCInterval)
		defer t.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			n, err := st.CollectCodeBlobs(ctx, time.Now().Add(-d.cfg.CodeBlobRetention))
			cancel()
			if err != nil {
				d.log.Warn("code blob collection failed", "err", err)
			} else if n > 0 {
				d.log.Info("code blobs collected", "removed", n, "older_than", d.cfg.CodeBlobRetention.String())
			}
			select {
			case <-d.gcStop:
				return
			case <-t.C:
			}
		}
	}()
}

// stopCodeGC ends the collection loop and waits for it (idempotent).
func (d *Daemon) stopCodeGC() {
	d.gcStopOnce.Do(func() { close(d.gcStop) })
	if d.gcStarted {
		<-d.gcDone
	}
}
