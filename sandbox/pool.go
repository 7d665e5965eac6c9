package sandbox

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
)

// The pool keeps generic sandboxes booted for never-seen containers whose
// memory limit is the default one. Its target size is PoolSize plus the
// demand expected while a sandbox boots (poolTarget), and it boots up
// to poolMaxBooting sandboxes at once. A container that finds the pool
// empty does not boot its own: it waits for the next pooled sandbox to be
// ready (first come, first served; a boot is under way for each waiter as
// the bound allows), so a boot that began before the call is never
// wasted.
const (
	// poolRetryWait is the pause after a failed pool boot (waiters still
	// get boots of their own: a failure is theirs to report).
	poolRetryWait = time.Second
	// poolDemandWindow is how long a never-seen container counts in the
	// demand rate.
	poolDemandWindow = 2 * time.Second
	// poolShrinkAfter: without demand this long, ready sandboxes beyond
	// PoolSize are destroyed.
	poolShrinkAfter = 10 * time.Second
	// poolMaxExtra bounds the sandboxes the pool adds to PoolSize.
	poolMaxExtra = 64
	// poolSandboxBytes is what a pooled sandbox is reckoned to cost when
	// the pool grows under a memory budget (an idle one is charged less):
	// the pool never takes more than half of the budget left.
	poolSandboxBytes = 16 << 20
	// poolBootGuess is the boot time assumed before one was measured.
	poolBootGuess = 100 * time.Millisecond
	// poolLeadMin is the shortest lead time poolTarget plans for.
	poolLeadMin = 100 * time.Millisecond
	// poolRefillDefer: when a ready sandbox taken from the pool leaves
	// another ready one, the refill begins this long after the take, so
	// that its boot (fork, namespaces, the daemon's side of libcontainer:
	// ~10 ms of CPU) does not share the CPUs with the container's first
	// call (on 2 CPUs: p50 3.3 -> 2.4 ms, p90 4.4 -> 3.1 ms); the next
	// never-seen container still finds a ready one. A take that
	// empties the pool, and a container that waits for a boot, wake the
	// pool at once.
	poolRefillDefer = 10 * time.Millisecond
)

// deferRefill runs wake after poolRefillDefer (a seam for tests).
var deferRefill = func(wake func()) { time.AfterFunc(poolRefillDefer, wake) }

// poolMaxBooting bounds the pool's boots in flight: node's boot is CPU
// bound, more would only slow each one.
var poolMaxBooting = max(2, 2*runtime.NumCPU())

// poolState is the pool's bookkeeping beyond the ready sandboxes
// (Manager.pool); guarded by Manager.mu.
type poolState struct {
	booting int
	waiters []chan poolResult // FIFO; each buffered 1
	overdue int               // waiters past half their wait (awaitBoot)
	demands []time.Time       // never-seen containers within poolDemandWindow
	last    time.Time         // the latest never-seen container
	boot    time.Duration     // moving average of a pool boot
	retryAt time.Time         // no boot for the target before (after a failure)
	boots   sync.WaitGroup    // boot goroutines
}

// poolResult is a boot handed to a waiter.
type poolResult struct {
	sb  Sandbox
	err error
}

// poolTarget is the pool size that covers the demand expected while
// sandboxes boot, with base spare on top: the never-seen containers of the
// window (demands, oldest first), seen as a rate over at least the lead
// time (twice a boot), times that lead time; a single one is no rate.
// Never more than base+bound.
func poolTarget(base int, demands []time.Time, now time.Time, boot time.Duration, bound int) int {
	if len(demands) < 2 || bound <= 0 {
		return base
	}
	lead := max(2*boot, poolLeadMin)
	span := max(now.Sub(demands[0]), lead)
	extra := int(math.Floor(float64(len(demands)) * lead.Seconds() / span.Seconds()))
	return base + min(extra, bound)
}

// poolServes reports whether a container with limits l can get a pooled
// sandbox (V8's heap limit follows the memory limit and is fixed at boot).
func (m *Manager) poolServes(l types.Limits) bool {
	return m.cfg.PoolSize > 0 && l.MemoryMB == m.cfg.Limits.MemoryMB
}

// fromPool gives container a pooled sandbox: a ready one (served pooled),
// else the next one to finish booting (served cold: the call waited for a
// boot), bounded by StartTimeout. It counts the container in the demand
// rate.
func (m *Manager) fromPool(name string, l types.Limits) (Sandbox, types.Served, error) {
	m.mu.Lock()
	now := time.Now()
	m.ps.demands = append(m.ps.demands, now)
	m.ps.last = now
	m.mu.Unlock()
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, "", ErrClosed
		}
		served := types.ServedPooled
		var sb Sandbox
		if len(m.pool) > 0 {
			sb = m.pool[0]
			m.pool = m.pool[1:]
			spare := len(m.pool) > 0
			m.mu.Unlock()
			if spare {
				deferRefill(m.wakeRefill)
			} else {
				m.wakeRefill()
			}
		} else {
			w := make(chan poolResult, 1)
			m.ps.waiters = append(m.ps.waiters, w)
			m.mu.Unlock()
			m.wakeRefill()
			r := m.awaitBoot(w)
			if r.err != nil {
				return nil, "", r.err
			}
			sb, served = r.sb, types.ServedCold
			m.wakeRefill()
		}
		select {
		case <-sb.Done():
			continue // died in the pool; its watcher cleans up
		default:
		}
		if err := sb.Assign(name, l); err != nil {
			m.log.Error("assigning pooled sandbox", "sandbox", sb.ID(), "err", err)
			m.destroy(sb)
			continue
		}
		return sb, served, nil
	}
}

// awaitBoot waits for the boot handed to waiter w (first come, first
// served), bounded by Close and by one and a half StartTimeout (plus a
// margin for the hand-off): a waiter still waiting after half of it is
// overdue and gets a boot of its own beyond poolMaxBooting, which ends
// within StartTimeout.
func (m *Manager) awaitBoot(w chan poolResult) poolResult {
	half := time.NewTimer(m.cfg.StartTimeout / 2)
	defer half.Stop()
	t := time.NewTimer(m.cfg.StartTimeout*3/2 + time.Second)
	defer t.Stop()
	overdue := false
	defer func() {
		if overdue {
			m.mu.Lock()
			m.ps.overdue--
			m.mu.Unlock()
		}
	}()
	var err error
wait:
	for {
		select {
		case r := <-w:
			return r
		case <-half.C:
			m.mu.Lock()
			for _, o := range m.ps.waiters {
				if o == w {
					overdue = true
					m.ps.overdue++
				}
			}
			m.mu.Unlock()
			m.wakeRefill()
		case <-t.C:
			err = fmt.Errorf("%w: no pooled sandbox booted within %s", ErrStart, m.cfg.StartTimeout*3/2)
			break wait
		case <-m.stop:
			err = ErrClosed
			break wait
		}
	}
	m.mu.Lock()
	for i, o := range m.ps.waiters {
		if o == w {
			m.ps.waiters = append(m.ps.waiters[:i:i], m.ps.waiters[i+1:]...)
			m.mu.Unlock()
			return poolResult{err: err}
		}
	}
	m.mu.Unlock()
	// Handed a boot meanwhile: it is in the channel already.
	if r := <-w; r.sb != nil {
		if err == ErrClosed {
			m.destroy(r.sb)
			return poolResult{err: err}
		}
		return r
	}
	return poolResult{err: err}
}

// wakeRefill tells the pool filler that the pool changed.
func (m *Manager) wakeRefill() {
	select {
	case m.refill <- struct{}{}:
	default:
	}
}

// poolPlanLocked drops old demands and returns how many boots to start now
// and the current target. m.mu is held.
func (m *Manager) poolPlanLocked(now time.Time, bound int) (start, target int) {
	ps := &m.ps
	m.pruneDemandsLocked(now)
	target = poolTarget(m.cfg.PoolSize, ps.demands, now, ps.boot, bound)
	need := len(ps.waiters) // a boot of their own for every waiter
	if now.After(ps.retryAt) {
		need = max(need, target-len(m.pool)+len(ps.waiters))
	}
	// Boots are bounded (node's boot is CPU bound: more at once only slow
	// each one, and the waiters are served first come, first served),
	// except one more for every overdue waiter.
	start = min(need, poolMaxBooting+ps.overdue) - ps.booting
	return max(start, 0), target
}

// pruneDemandsLocked forgets the demands older than poolDemandWindow
// before now. m.mu is held.
func (m *Manager) pruneDemandsLocked(now time.Time) {
	i := 0
	for i < len(m.ps.demands) && now.Sub(m.ps.demands[i]) > poolDemandWindow {
		i++
	}
	m.ps.demands = m.ps.demands[i:]
}

// poolBound is how many sandboxes the pool may add to PoolSize now: at
// most poolMaxExtra, no more than MaxSandboxes leaves room to assign, and
// under a memory budget no more than half the budget left can hold.
func (m *Manager) poolBound() int {
	bound := poolMaxExtra
	if m.cfg.MaxSandboxes > 0 {
		m.mu.Lock()
		room := m.cfg.MaxSandboxes - len(m.entries)
		m.mu.Unlock()
		bound = min(bound, room-m.cfg.PoolSize)
	}
	if m.cfg.MemoryBudgetBytes > 0 && m.host != nil {
		fs, err := m.host.fleet.stats()
		if err != nil {
			return 0
		}
		left := m.cfg.MemoryBudgetBytes - int64(fs.MemoryBytes)
		bound = min(bound, int(left/2/poolSandboxBytes)-m.cfg.PoolSize)
	}
	return max(bound, 0)
}

// poolLoop keeps the pool at its target (poolTarget) and boots one
// sandbox for every waiter, up to poolMaxBooting at once; it shrinks the
// pool to PoolSize after poolShrinkAfter without demand.
func (m *Manager) poolLoop() {
	defer close(m.poolDone)
	if m.cfg.PoolSize == 0 {
		return
	}
	defer m.ps.boots.Wait() // Close destroys what they bring
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		bound := m.poolBound()
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return
		}
		now := time.Now()
		start, _ := m.poolPlanLocked(now, bound)
		m.ps.booting += start
		wait := m.ps.retryAt.Sub(now)
		m.mu.Unlock()
		for range start {
			m.ps.boots.Add(1)
			go m.poolBoot()
		}
		if wait > 0 {
			retry.Reset(wait)
		}
		select {
		case <-m.stop:
			return
		case <-m.refill:
		case <-retry.C:
		}
	}
}

// poolBoot boots one pooled sandbox and hands it to the oldest waiter, or
// adds it to the pool; a failure goes to the oldest waiter, if any.
func (m *Manager) poolBoot() {
	defer m.ps.boots.Done()
	defer m.wakeRefill()
	began := time.Now()
	sb, err := m.newSandbox("", m.cfg.Limits)
	took := time.Since(began)
	m.mu.Lock()
	m.ps.booting--
	var w chan poolResult
	if len(m.ps.waiters) > 0 {
		w = m.ps.waiters[0]
		m.ps.waiters = m.ps.waiters[1:]
	}
	if err != nil {
		m.ps.retryAt = time.Now().Add(poolRetryWait)
		m.mu.Unlock()
		m.log.Error("pool sandbox start failed", "err", err)
		if w != nil {
			w <- poolResult{err: err}
		}
		return
	}
	m.met.starts.WithLabelValues("pool").Inc()
	m.met.startSeconds.Observe(took.Seconds())
	if m.ps.boot == 0 {
		m.ps.boot = took
	} else {
		m.ps.boot = (3*m.ps.boot + took) / 4
	}
	if m.closed {
		m.mu.Unlock()
		if w != nil {
			w <- poolResult{err: ErrClosed}
		}
		m.destroy(sb)
		return
	}
	if w != nil {
		m.mu.Unlock()
		w <- poolResult{sb: sb}
		return
	}
	m.pool = append(m.pool, sb)
	m.watchers.Add(1)
	m.mu.Unlock()
	go m.watchPooled(sb)
}

// shrinkPool destroys the ready sandboxes beyond PoolSize (newest first)
// when no never-seen container came for poolShrinkAfter before now.
func (m *Manager) shrinkPool(now time.Time) {
	m.mu.Lock()
	if now.Sub(m.ps.last) < poolShrinkAfter {
		m.mu.Unlock()
		return
	}
	m.pruneDemandsLocked(now)
	var extra []Sandbox
	if len(m.pool) > m.cfg.PoolSize {
		extra = append(extra, m.pool[m.cfg.PoolSize:]...)
		m.pool = m.pool[:m.cfg.PoolSize:m.cfg.PoolSize]
	}
	m.mu.Unlock()
	for _, sb := range extra {
		m.log.Debug("pool shrinks: destroying an idle pooled sandbox", "sandbox", sb.ID())
		m.destroy(sb)
	}
}

// poolTargetNow is the pool's current target size (Status).
func (m *Manager) poolTargetNow() int {
	if m.cfg.PoolSize == 0 {
		return 0
	}
	bound := m.poolBound()
	m.mu.Lock()
	defer m.mu.Unlock()
	_, target := m.poolPlanLocked(time.Now(), bound)
	return target
}

// watchPooled drops sb from the pool if its runtime dies there.
func (m *Manager) watchPooled(sb Sandbox) {
	defer m.watchers.Done()
	select {
	case <-sb.Done():
	case <-m.stop:
		return // Close destroys the pool
	}
	m.mu.Lock()
	m.dropPooledLocked(sb.ID())
	m.mu.Unlock()
	if sb.Info().Container == "" {
		m.destroy(sb)
	}
}

// dropPooledLocked removes the pooled sandbox with id from the pool and
// returns it (nil when not pooled). m.mu is held.
func (m *Manager) dropPooledLocked(id string) Sandbox {
	for i, sb := range m.pool {
		if sb.ID() == id {
			m.pool = append(m.pool[:i:i], m.pool[i+1:]...)
			m.wakeRefill()
			return sb
		}
	}
	return nil
}
