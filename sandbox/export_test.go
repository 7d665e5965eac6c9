package sandbox

import "time"

// SandboxOf exposes the live sandbox of a container to the external tests.
func (m *Manager) SandboxOf(container string) Sandbox {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[container]
	if e == nil || e.sb == nil {
		return nil
	}
	return e.sb
}

// ReapAt runs one reaper pass as if the clock read now (freezing and idle
// reaping without waiting for the ticker).
func (m *Manager) ReapAt(now time.Time) { m.reap(now) }

// PoolLen is the number of ready pooled sandboxes.
func (m *Manager) PoolLen() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pool)
}

// PoolBooting is the number of pooled sandboxes booting.
func (m *Manager) PoolBooting() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ps.booting
}

// PoolWaiters is the number of containers waiting for a pooled sandbox.
func (m *Manager) PoolWaiters() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ps.waiters)
}

// CgroupMounts lists the mount points of every cgroup hierarchy.
var CgroupMounts = cgroupMounts

// FirstChild returns the oldest child of pid (node under tini), or 0.
var FirstChild = firstChild

// PoolTarget is the pool's target size for base, the never-seen
// containers' arrivals, the time now, a boot's duration and the bound.
var PoolTarget = poolTarget

// SetPoolMaxBooting sets the bound on the pool's boots at once until the
// test ends.
func SetPoolMaxBooting(t interface{ Cleanup(func()) }, n int) {
	old := poolMaxBooting
	poolMaxBooting = n
	t.Cleanup(func() { poolMaxBooting = old })
}

// DeferPoolRefills hands the test every refill the pool defers after a
// take (see poolRefillDefer) instead of running it after the delay, until
// the test ends.
func DeferPoolRefills(t interface{ Cleanup(func()) }) <-chan func() {
	ch := make(chan func(), 64)
	old := deferRefill
	deferRefill = func(wake func()) { ch <- wake }
	t.Cleanup(func() { deferRefill = old })
	return ch
}

// ProcsRaised tells whether the process's extra Ps are in place
// (syscallProcs): libcontainer works, or did less than a linger ago.
func ProcsRaised() bool {
	p := processProcs()
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raised
}
