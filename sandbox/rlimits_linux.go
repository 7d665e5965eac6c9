package sandbox

import (
	"errors"
	"fmt"

	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"
)

// configs returns the rlimits libcontainer sets on a sandbox's init
// process (see Rlimits): NOFILE and MEMLOCK as configured, CORE 0, NPROC
// the pids limit.
func (r Rlimits) configs(pids int) []configs.Rlimit {
	return []configs.Rlimit{
		{Type: unix.RLIMIT_NOFILE, Soft: r.MaxOpenFiles, Hard: r.MaxOpenFiles},
		{Type: unix.RLIMIT_MEMLOCK, Soft: r.MaxLockedMemoryBytes, Hard: r.MaxLockedMemoryBytes},
		{Type: unix.RLIMIT_CORE, Soft: 0, Hard: 0},
		{Type: unix.RLIMIT_NPROC, Soft: uint64(pids), Hard: uint64(pids)},
	}
}

// setNprocLimit sets RLIMIT_NPROC of every process of the sandbox (a
// pooled sandbox assigned to a container with its own pids limit; it runs
// no user code yet, so no process is missed).
func (s *lcSandbox) setNprocLimit(pids int) error {
	procs, err := s.rt.Processes()
	if err != nil {
		return fmt.Errorf("listing processes: %w", err)
	}
	lim := unix.Rlimit{Cur: uint64(pids), Max: uint64(pids)}
	for _, pid := range procs {
		if err := unix.Prlimit(pid, unix.RLIMIT_NPROC, &lim, nil); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("RLIMIT_NPROC of pid %d: %w", pid, err)
		}
	}
	return nil
}
