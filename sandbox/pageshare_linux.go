package sandbox

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Page sharing (Config.SharePages): every sandbox boots the same Node
// into the same state, but an idle sandbox still holds ~6.5 MiB of private
// anonymous memory (V8's heap deserialized from Node's snapshot, malloc
// arenas): pages equal in content but not in address, because V8 places
// its heap at random addresses and the heap is full of pointers. With one
// V8 random seed for all the sandboxes of a daemon, their heaps are laid
// out alike, most of those pages are byte-identical, and the kernel's
// samepage merging (KSM) keeps one copy: the cgroup of each sandbox is
// then charged ~3 MiB instead of ~7.3 MiB (docs/PERFORMANCE.md).
//
// The seed is random per daemon start (never a constant: V8 derives its
// string hash seed from it, and an outsider who knew it could flood a
// webtask's hash tables). The agent replaces it by a seed of its own
// sandbox before any code draws a Math.random number (rootfs/agent), so
// Math.random stays distinct across sandboxes. What it costs in isolation
// (merged pages are a timing side channel between sandboxes) is in
// docs/SECURITY.md; it is off by default.

// prSetMemoryMerge is PR_SET_MEMORY_MERGE (Linux 6.4): every present and
// future anonymous mapping of the process becomes mergeable, and its
// children inherit the setting across fork and execve (kernels before 6.8
// dropped it at execve: checkMerging warns then).
const prSetMemoryMerge = 67

// ksmDir holds the kernel's KSM controls.
var ksmDir = "/sys/kernel/mm/ksm"

// enablePageSharing turns KSM on (if the host has it off), starts pacing
// ksmd (returned) and makes this process and every sandbox it starts
// mergeable. It returns the V8 random seed of this daemon's
// sandboxes.
func enablePageSharing(log *slog.Logger) (seed uint32, pace *ksmPace, err error) {
	run, err := os.ReadFile(filepath.Join(ksmDir, "run"))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: share pages: this kernel has no samepage merging (CONFIG_KSM): %w", ErrConfig, err)
	}
	if strings.TrimSpace(string(run)) != "1" {
		if err := os.WriteFile(filepath.Join(ksmDir, "run"), []byte("1"), 0); err != nil {
			return 0, nil, fmt.Errorf("share pages: turning KSM on: %w", err)
		}
		log.Info("sandbox: kernel samepage merging (KSM) turned on for --share-pages")
	}
	if err := unix.Prctl(prSetMemoryMerge, 1, 0, 0, 0); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return 0, nil, fmt.Errorf("%w: share pages: this kernel cannot merge a whole process (PR_SET_MEMORY_MERGE needs Linux 6.4)", ErrConfig)
		}
		return 0, nil, fmt.Errorf("share pages: PR_SET_MEMORY_MERGE: %w", err)
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, nil, err
	}
	pace = newKSMPace(ksmDir, log)
	// V8 takes 0 as "no seed".
	return binary.LittleEndian.Uint32(b[:])>>1 | 1, pace, nil
}

// seedArgs are node's flags for a sandbox of a daemon sharing pages.
func seedArgs(seed uint32) []string {
	if seed == 0 {
		return nil
	}
	return []string{"--random-seed=" + strconv.FormatUint(uint64(seed), 10)}
}

// checkMerging warns when a sandbox's node (pid) did not inherit the
// daemon's PR_SET_MEMORY_MERGE: the kernel then merges nothing of it.
func checkMerging(pid int, log *slog.Logger) {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/ksm_stat")
	if err == nil && strings.Contains(string(st), "ksm_merge_any: yes") {
		return
	}
	log.Warn("sandbox: --share-pages: this sandbox's runtime is not mergeable (the kernel dropped PR_SET_MEMORY_MERGE at execve; Linux 6.8+ keeps it)", "pid", pid)
}
