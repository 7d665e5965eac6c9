package sandbox

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// KSM pace: ksmd walks every mergeable page in passes, and a page merges
// only once it was seen unchanged in two passes. Scanning fast costs CPU
// for as long as ksmd runs, scanning slowly lets a burst of boots fill the
// memory budget before their pages merge. A daemon sharing pages paces
// ksmd (/sys/kernel/mm/ksm/pages_to_scan, a host-wide knob): fast from a
// sandbox's boot until two full passes have seen it, then slow (the
// kernel's default) while the fleet idles, and slow when it stops. (A
// daemon that left KSM on finds it on at its next start: pacing cannot
// depend on who turned it on.)
const (
	// ksmFastPages is pages_to_scan while new sandboxes wait to be merged:
	// 2000 pages every 20 ms, ~400 MB/s.
	ksmFastPages = 2000
	// ksmSlowPages is pages_to_scan while the fleet idles (the kernel's
	// default): ~2 % of a CPU with 800 idle sandboxes here.
	ksmSlowPages = 100
	// ksmPacePeriod is how often the pace is looked at.
	ksmPacePeriod = time.Second
)

// ksmPace sets ksmd's scan rate from the sandboxes' boots.
type ksmPace struct {
	dir   string // the KSM controls (ksmDir)
	boots atomic.Uint64
	log   *slog.Logger

	stop chan struct{}
	wg   sync.WaitGroup

	// Owned by run.
	seenBoots uint64
	fastUntil uint64 // full_scans at which the pace turns slow; 0 = slow
	pages     int    // pages_to_scan as last written
}

// newKSMPace starts pacing ksmd (fast first: the fleet is about to boot).
func newKSMPace(dir string, log *slog.Logger) *ksmPace {
	p := &ksmPace{dir: dir, log: log, stop: make(chan struct{})}
	p.booted()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(ksmPacePeriod)
		defer t.Stop()
		for {
			p.step()
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// booted records a sandbox's boot.
func (p *ksmPace) booted() { p.boots.Add(1) }

// step sets the pace once: fast until ksmd finished the second full pass
// after the latest boot, slow after.
func (p *ksmPace) step() {
	scans, err := p.read("full_scans")
	if err != nil {
		return
	}
	if b := p.boots.Load(); b != p.seenBoots {
		p.seenBoots = b
		// The pass under way may have passed the new pages already: two
		// more full passes see them twice.
		p.fastUntil = scans + 2
	}
	want := ksmSlowPages
	if p.fastUntil != 0 && scans < p.fastUntil {
		want = ksmFastPages
	} else {
		p.fastUntil = 0
	}
	if want == p.pages {
		return
	}
	if err := os.WriteFile(filepath.Join(p.dir, "pages_to_scan"), []byte(strconv.Itoa(want)), 0); err != nil {
		p.log.Warn("sandbox: setting KSM's pace", "err", err)
		return
	}
	p.pages = want
}

func (p *ksmPace) read(name string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(p.dir, name))
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// close stops pacing and leaves ksmd at the slow pace.
func (p *ksmPace) close() {
	close(p.stop)
	p.wg.Wait()
	if p.pages != ksmSlowPages {
		_ = os.WriteFile(filepath.Join(p.dir, "pages_to_scan"), []byte(strconv.Itoa(ksmSlowPages)), 0)
	}
}
