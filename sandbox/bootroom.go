package sandbox

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// bootRoomBytes is what a booting sandbox needs under the memory budget
// before the kernel merged any of its pages (~7.3 MiB, docs/PERFORMANCE.md),
// with a margin.
const bootRoomBytes = 16 << 20

// roomPollInterval is how often a boot waiting for room looks again.
const roomPollInterval = 50 * time.Millisecond

// bootRoom admits boots under the fleet's memory budget when pages are
// shared (Config.SharePages). The fleet's memory then falls as the kernel
// merges what the last sandboxes booted, later than they boot: a boot that
// would not fit yet waits for it instead of failing at the limit (where
// namespaces cannot be created, or the kernel kills a sandbox to make
// room).
type bootRoom struct {
	budget int64                  // bytes, > 0
	used   func() (uint64, error) // the fleet's memory the kernel cannot reclaim

	mu      sync.Mutex
	booting int // boots admitted and not yet released
}

// await waits, bounded by ctx, until one more sandbox fits under the
// budget beside the boots under way, and reserves its room until release
// is called (when the boot ended). When the fleet's memory cannot be read
// it admits at once. On ctx's end it fails with ErrCapacity.
func (r *bootRoom) await(ctx context.Context) (release func(), err error) {
	release = func() {
		r.mu.Lock()
		r.booting--
		r.mu.Unlock()
	}
	var t *time.Ticker
	for {
		r.mu.Lock()
		used, err := r.used()
		if err != nil || int64(used)+int64(r.booting+1)*bootRoomBytes <= r.budget {
			r.booting++
			r.mu.Unlock()
			return release, nil
		}
		r.mu.Unlock()
		if t == nil {
			t = time.NewTicker(roomPollInterval)
			defer t.Stop()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: the memory budget is full (%d of %d MiB in use)", ErrCapacity, used>>20, r.budget>>20)
		case <-t.C:
		}
	}
}
