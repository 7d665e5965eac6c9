package sandbox

import (
	"time"

	"github.com/webtaskd/webtaskd/api/types"
)

// poolRetryWait is the pause after a failed pool boot.
const poolRetryWait = time.Second

// takePooled assigns a live pooled sandbox to container, or returns nil
// when the pool is empty or its sandboxes' memory limit differs. A pooled
// sandbox leaves the pool before it is assigned: it serves one container
// at most.
func (m *Manager) takePooled(name string, l types.Limits) Sandbox {
	if m.cfg.PoolSize == 0 || l.MemoryMB != m.cfg.Limits.MemoryMB {
		return nil
	}
	for {
		m.mu.Lock()
		if len(m.pool) == 0 {
			m.mu.Unlock()
			return nil
		}
		sb := m.pool[0]
		m.pool = m.pool[1:]
		m.mu.Unlock()
		m.wakeRefill()
		select {
		case <-sb.Done():
			continue // died in the pool; its watcher cleaned up
		default:
		}
		if err := sb.Assign(name, l); err != nil {
			m.log.Error("assigning pooled sandbox", "sandbox", sb.ID(), "err", err)
			m.destroy(sb)
			continue
		}
		return sb
	}
}

// wakeRefill tells the pool filler that the pool shrank.
func (m *Manager) wakeRefill() {
	select {
	case m.refill <- struct{}{}:
	default:
	}
}

// poolLoop keeps PoolSize generic sandboxes booted, one boot at a time.
func (m *Manager) poolLoop() {
	defer close(m.poolDone)
	if m.cfg.PoolSize == 0 {
		return
	}
	for {
		m.mu.Lock()
		need := !m.closed && len(m.pool) < m.cfg.PoolSize
		m.mu.Unlock()
		if !need {
			select {
			case <-m.stop:
				return
			case <-m.refill:
				continue
			}
		}
		began := time.Now()
		sb, err := m.newSandbox("", m.cfg.Limits)
		if err != nil {
			m.log.Error("pool sandbox start failed", "err", err)
			t := time.NewTimer(poolRetryWait)
			select {
			case <-m.stop:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		m.met.starts.WithLabelValues("pool").Inc()
		m.met.startSeconds.Observe(time.Since(began).Seconds())
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			m.destroy(sb)
			return
		}
		m.pool = append(m.pool, sb)
		m.watchers.Add(1)
		m.mu.Unlock()
		go m.watchPooled(sb)
	}
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
		m.destroy(sb) // otherwise the entry's watcher does it
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
