package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/opencontainers/runc/libcontainer"
)

// Pause freezes the sandbox.
func (s *lcSandbox) Pause() error {
	if s.destroyed.Load() {
		return ErrDestroyed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused {
		return nil
	}
	// The cgroup v1 freezer can fail to freeze a busy runtime on a slow,
	// loaded host ("unable to freeze", after which libcontainer thaws it
	// back); runc calls that a game of chances. A few bounded attempts
	// make it rare; a sandbox that still cannot be frozen keeps running.
	var err error
	for range freezeAttempts {
		if err = s.rt.Pause(); err == nil {
			s.paused = true
			return nil
		}
	}
	return fmt.Errorf("sandbox %s: pause: %w", s.id, err)
}

// freezeAttempts bounds Pause's tries (each is bounded by libcontainer).
const freezeAttempts = 3

// Resume thaws the sandbox. A runtime killed while frozen (by a signal
// from outside, or by the OOM killer) dies only once thawed, after any
// liveness check: so Resume looks at the frozen runtime first, and when
// it will not survive the thaw it thaws it anyway (so that it exits and
// is reaped) and returns an error wrapping ErrCrashed (or ErrOOM) and
// ErrNotReached, as does every later Resume.
func (s *lcSandbox) Resume() error {
	if s.destroyed.Load() {
		return ErrDestroyed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozenDeath != nil {
		return s.frozenDeath
	}
	if !s.paused {
		return nil
	}
	why := s.doomedWhileFrozen()
	if err := s.rt.Resume(); err != nil && !errors.Is(err, libcontainer.ErrNotPaused) {
		return fmt.Errorf("sandbox %s: resume: %w", s.id, err)
	}
	s.paused = false
	if why != "" {
		reason := ErrCrashed
		if s.oomKilled() {
			reason = ErrOOM
		}
		s.frozenDeath = fmt.Errorf("sandbox %s: %w (%s while frozen; %w)", s.id, reason, why, ErrNotReached)
		return s.frozenDeath
	}
	return nil
}

// Paused reports whether the sandbox is frozen.
func (s *lcSandbox) Paused() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused
}

// ThawExternal thaws the sandbox when its cgroup is frozen although the
// sandbox did not freeze it (someone wrote FROZEN to its freezer); it
// reports whether it did. It reads the cgroup.
func (s *lcSandbox) ThawExternal() (bool, error) {
	if s.destroyed.Load() {
		return false, ErrDestroyed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused {
		return false, nil // frozen by us: the next call thaws it
	}
	err := s.rt.Resume() // reads the freezer state: ErrNotPaused unless frozen
	switch {
	case errors.Is(err, libcontainer.ErrNotPaused):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("sandbox %s: thaw: %w", s.id, err)
	}
	return true, nil
}

// doomedWhileFrozen tells, while the sandbox is frozen, why its runtime
// will not survive the thaw ("" when it will): tini (the sandbox's init)
// or node has exited (gone or a zombie), or has SIGKILL pending (a fatal
// signal sent to a frozen process stays queued until the thaw). Frozen
// processes cannot change this meanwhile.
func (s *lcSandbox) doomedWhileFrozen() string {
	for _, p := range []struct {
		name string
		pid  int
	}{{"init", s.pid}, {"node", s.nodePid}} {
		if p.pid <= 0 {
			continue // unknown
		}
		st, err := readTaskStatus(p.pid)
		switch {
		case errors.Is(err, fs.ErrNotExist) || st.exited:
			return p.name + " exited"
		case err != nil:
			s.log.Warn("sandbox: reading a frozen process's status", "pid", p.pid, "err", err)
		case st.killPending:
			return p.name + " killed"
		}
	}
	return ""
}

// firstChild returns the oldest child of pid (node, the child of tini,
// read once at boot), or 0.
func firstChild(pid int) int {
	p := strconv.Itoa(pid)
	b, err := os.ReadFile("/proc/" + p + "/task/" + p + "/children")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) == 0 {
		return 0
	}
	c, _ := strconv.Atoi(string(f[0]))
	return c
}

// taskStatus are the figures of /proc/<pid>/status that tell whether a
// process is about to die.
type taskStatus struct {
	exited      bool // a zombie (State Z or X)
	killPending bool // SIGKILL in SigPnd or ShdPnd
}

// sigkillMask is SIGKILL's bit in the pending masks of /proc/<pid>/status.
const sigkillMask = 1 << (9 - 1)

func readTaskStatus(pid int) (taskStatus, error) {
	var st taskStatus
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return st, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		fields := bytes.Fields(val)
		if len(fields) == 0 {
			continue
		}
		switch string(key) {
		case "State":
			st.exited = fields[0][0] == 'Z' || fields[0][0] == 'X'
		case "SigPnd", "ShdPnd":
			if mask, err := strconv.ParseUint(string(fields[0]), 16, 64); err == nil && mask&sigkillMask != 0 {
				st.killPending = true
			}
		}
	}
	return st, sc.Err()
}
