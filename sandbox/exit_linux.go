package sandbox

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// destroyWait bounds how long Destroy waits for the runtime to stop.
const destroyWait = 10 * time.Second

// wait reaps the runtime, records why it died (OOM seen through the cgroup
// before any cleanup, else a crash) and removes the runtime.
func (s *lcSandbox) wait(oomCh <-chan struct{}, stdio *sync.WaitGroup) {
	state, werr := s.proc.Wait()
	oom := s.oomKilled()
	if !oom && oomCh != nil {
		select {
		case _, ok := <-oomCh:
			oom = ok
		default:
		}
	}
	switch {
	case s.destroyed.Load():
		// Killed by Destroy: calls in flight fail with ErrDestroyed.
		s.exitErr = ErrDestroyed
	case oom:
		s.exitErr = ErrOOM
	default:
		s.exitErr = ErrCrashed
	}
	if s.exitErr != ErrDestroyed {
		s.log.Warn("sandbox runtime exited", "container", s.owner(), "state", fmt.Sprint(state), "wait_err", werr, "oom", oom)
	}
	close(s.done)
	_ = s.client.Close()
	stdio.Wait()
	if err := s.cleanup(); err != nil {
		s.log.Error("sandbox cleanup failed", "container", s.owner(), "err", err)
	}
}

// oomKilled reads the memory cgroup's OOM-kill counter (it must be read
// before the cgroup is removed).
func (s *lcSandbox) oomKilled() bool {
	if s.cg == nil {
		return false
	}
	n, err := s.cg.oomKills()
	return err == nil && n > 0
}

// cleanup destroys the libcontainer runtime (state dir and cgroups) once
// it has exited.
func (s *lcSandbox) cleanup() error {
	s.cleanupOnce.Do(func() {
		defer processProcs().enter()() // libcontainer's destroy blocks in system calls
		var err error
		for range 3 {
			if err = s.rt.Destroy(); err == nil {
				break
			}
			// A paused runtime must be thawed before Destroy.
			_ = s.rt.Resume()
		}
		s.cleanupErr = err
	})
	return s.cleanupErr
}

// Destroy kills the runtime, waits (bounded) until it stopped and removes
// its state and cgroups. Idempotent.
func (s *lcSandbox) Destroy() error {
	s.destroyed.Store(true)
	select {
	case <-s.done:
	default:
		// SIGKILL to the init of a PID namespace kills every process in it;
		// libcontainer thaws a paused cgroup for SIGKILL.
		if err := s.rt.Signal(unix.SIGKILL); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
			s.log.Warn("sandbox: kill failed", "err", err)
		}
		t := time.NewTimer(destroyWait)
		defer t.Stop()
		select {
		case <-s.done:
		case <-t.C:
			return fmt.Errorf("sandbox %s: runtime did not stop within %s", s.id, destroyWait)
		}
	}
	// wait() runs the cleanup after done; run it here too so that Destroy
	// returns only once the state and cgroups are gone.
	if err := s.cleanup(); err != nil {
		return fmt.Errorf("sandbox %s: destroy: %w", s.id, err)
	}
	return nil
}
