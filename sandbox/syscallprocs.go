package sandbox

import (
	"os"
	"runtime"
	"sync"
	"time"
)

// syscallProcs gives the Go scheduler extra Ps while libcontainer works.
//
// The parent side of a boot (libcontainer's create, start and exec) and of
// a teardown (destroy) spends most of its time blocked in system calls:
// reads of libcontainer's sync socket while the container's init runs (a
// blocking descriptor, outside the netpoller), writes to cgroup.procs that
// wait for an RCU grace period, mounts, rmdirs of cgroups. A goroutine in
// a system call keeps its P until the runtime's sysmon takes it back,
// after 20 µs to 10 ms, and not at all for up to 10 ms while another P
// idles. With GOMAXPROCS at the CPU count (2 on the machine of
// docs/PERFORMANCE.md), two boots held both Ps and the goroutine of a call
// that was ready to run waited for one: the 10-20 ms first responses of a
// burst of new containers. The extra Ps are only runnable slots: the
// kernel still shares the CPUs, and a goroutine blocked in a system call
// uses none.
//
// Most of those system calls are libcontainer's own; two begin as a boot
// ends and last the sandbox's life (its init's waitid, the OOM eventfd's
// read), so they too hold a P for up to 10 ms once they begin. So while
// any such work runs, and for linger after the last one ended,
// GOMAXPROCS is the runtime's default plus extra; then the runtime's
// default (which follows the CPU count and the cgroup's CPU quota) is
// restored. Each change stops the world once: a burst of boots changes it
// twice, and warm calls, which start no boot, never pay for it. When the
// GOMAXPROCS environment variable is set, the operator's setting stands
// and nothing changes. GOMAXPROCS is the process's: every host of the
// process shares one syscallProcs (processProcs). A nil *syscallProcs
// does nothing.
type syscallProcs struct {
	extra  int           // Ps added while work runs
	linger time.Duration // how long the Ps stay after the last work ended
	get    func() int    // runtime.GOMAXPROCS(0)
	set    func(n int)   // runtime.GOMAXPROCS(n)
	reset  func()        // runtime.SetDefaultGOMAXPROCS
	// afterFunc is time.AfterFunc (a seam for tests).
	afterFunc func(d time.Duration, f func()) interface{ Stop() bool }

	mu     sync.Mutex
	active int  // enter calls not yet left
	raised bool // GOMAXPROCS is the default plus extra
	gen    int  // counts lingers: a lower for an older one does nothing
	timer  interface{ Stop() bool }
}

// syscallProcsLinger is how long the extra Ps stay after the last
// libcontainer work ended: sysmon takes a P back from a system call
// within about 10 ms.
const syscallProcsLinger = time.Second

// processProcs is the process's syscallProcs, made on first use.
var processProcs = sync.OnceValue(func() *syscallProcs { return newSyscallProcs(poolMaxBooting) })

// newSyscallProcs returns the Ps of libcontainer's work for this process:
// extra more while it runs, or nil when GOMAXPROCS is set in the
// environment or extra is not positive.
func newSyscallProcs(extra int) *syscallProcs {
	if extra <= 0 || os.Getenv("GOMAXPROCS") != "" {
		return nil
	}
	return &syscallProcs{
		extra:  extra,
		linger: syscallProcsLinger,
		get:    func() int { return runtime.GOMAXPROCS(0) },
		set:    func(n int) { runtime.GOMAXPROCS(n) },
		reset:  runtime.SetDefaultGOMAXPROCS,
		afterFunc: func(d time.Duration, f func()) interface{ Stop() bool } {
			return time.AfterFunc(d, f)
		},
	}
}

// enter marks the start of blocking work; the returned leave marks its
// end and may be called more than once.
func (p *syscallProcs) enter() (leave func()) {
	if p == nil {
		return func() {}
	}
	p.mu.Lock()
	p.active++
	p.stopLingerLocked()
	if !p.raised {
		p.set(p.get() + p.extra)
		p.raised = true
	}
	p.mu.Unlock()
	var once sync.Once
	return func() { once.Do(p.leave) }
}

func (p *syscallProcs) leave() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active--
	if p.active > 0 {
		return
	}
	p.gen++
	gen := p.gen
	p.timer = p.afterFunc(p.linger, func() { p.lower(gen) })
}

// lower restores the default once linger passed without work.
func (p *syscallProcs) lower(gen int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen != p.gen || p.active > 0 || !p.raised {
		return
	}
	p.timer = nil
	p.reset()
	p.raised = false
}

// stopLingerLocked stops the linger under way, if any: work began again.
func (p *syscallProcs) stopLingerLocked() {
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.gen++
}
