package sandbox

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The seccomp policy of every sandbox: an allow-list. A syscall not
// listed fails with EPERM (SCMP_ACT_ERRNO); libcontainer makes syscalls
// newer than the libseccomp it was built with fail with ENOSYS, so that
// libc falls back to their older forms.
//
// Where it came from: the list starts from Docker's default profile
// (moby/moby profiles/seccomp/default.json, the entries allowed without
// any capability, as of 2024), minus what a Node webtask never needs and
// what widens the kernel's attack surface for no use here. The sandbox
// holds no capabilities, so the profile's capability-gated entries are
// all out. docs/SECURITY.md lists the policy for readers.

// seccompAllowed are the syscalls allowed without argument checks.
//
// Removed from Docker's list, each refused with EPERM:
//   - io_uring_setup, io_uring_enter, io_uring_register: a large, often
//     vulnerable kernel surface; libuv (UV_USE_IO_URING) falls back to its
//     thread pool when io_uring_setup fails.
//   - adjtimex, clock_adjtime, clock_adjtime64: clock tuning.
//   - fanotify_mark (useless without fanotify_init), name_to_handle_at,
//     remap_file_pages (deprecated), memfd_secret, modify_ldt,
//     landlock_*: nothing in Node or libc calls them.
//   - System V and POSIX message queues, semaphores and shared memory
//     (ipc, msg*, sem*, shm*, mq_*): Node does not use them.
//   - socketcall: the 32-bit socket multiplexer, whose address family
//     seccomp cannot see (only 64-bit ABIs are allowed at all).
//
// Docker allows ptrace, process_vm_readv/writev and clone3 on recent
// kernels; here they stay refused (clone3 with ENOSYS, below).
var seccompAllowed = []string{
	// files and directories
	"access", "faccessat", "faccessat2", "chdir", "fchdir", "getcwd",
	"chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "fchownat", "lchown",
	"open", "openat", "openat2", "creat", "close", "close_range",
	"read", "readv", "pread64", "preadv", "preadv2",
	"write", "writev", "pwrite64", "pwritev", "pwritev2",
	"lseek", "dup", "dup2", "dup3", "fcntl", "flock", "ioctl",
	"stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs",
	"getdents", "getdents64", "readlink", "readlinkat",
	"mkdir", "mkdirat", "rmdir", "mknod", "mknodat",
	"link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat",
	"rename", "renameat", "renameat2", "truncate", "ftruncate",
	"fallocate", "fadvise64", "readahead",
	"fsync", "fdatasync", "sync", "syncfs", "sync_file_range",
	"utime", "utimes", "utimensat", "futimesat", "umask",
	"getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
	"setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
	"copy_file_range", "sendfile", "splice", "tee", "vmsplice",
	"inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
	// pipes, polling, events, timers
	"pipe", "pipe2", "poll", "ppoll", "select", "pselect6",
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait", "epoll_wait_old",
	"epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4",
	"timerfd_create", "timerfd_settime", "timerfd_gettime",
	"timer_create", "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete",
	"alarm", "getitimer", "setitimer", "nanosleep", "clock_nanosleep",
	"clock_gettime", "clock_getres", "gettimeofday", "time", "times",
	// Linux AIO (not io_uring)
	"io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
	// memory
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
	"mlock", "mlock2", "mlockall", "munlock", "munlockall", "membarrier", "memfd_create",
	"pkey_alloc", "pkey_free", "pkey_mprotect",
	// processes and threads (clone and personality are argument-checked below)
	"execve", "execveat", "fork", "vfork", "exit", "exit_group",
	"wait4", "waitid", "kill", "tkill", "tgkill",
	"pidfd_open", "pidfd_send_signal", "process_mrelease",
	"getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid",
	"getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
	"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
	"setfsuid", "setfsgid", "capget", "capset", "prctl", "arch_prctl", "seccomp",
	"set_tid_address", "set_robust_list", "get_robust_list", "rseq",
	"futex", "futex_waitv", "restart_syscall", "pause",
	"getrlimit", "setrlimit", "prlimit64", "getrusage", "getpriority", "setpriority",
	"ioprio_get", "ioprio_set", "getcpu", "sysinfo", "uname", "getrandom",
	"sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getattr", "sched_setattr",
	"sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler",
	"sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval",
	// signals
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend",
	"rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack",
	// sockets (socket itself is argument-checked below)
	"socketpair", "bind", "listen", "accept", "accept4", "connect", "shutdown",
	"getsockname", "getpeername", "getsockopt", "setsockopt",
	"sendto", "sendmsg", "sendmmsg", "recvfrom", "recvmsg", "recvmmsg",
}

// seccompSocketFamilies are the address families socket() may create:
// local sockets and IP. AF_NETLINK, AF_PACKET, AF_VSOCK, AF_ALG and every
// other family fail with EPERM (glibc copes without netlink: getaddrinfo
// then assumes both IPv4 and IPv6 may be configured).
var seccompSocketFamilies = []uint64{unix.AF_UNIX, unix.AF_INET, unix.AF_INET6}

// seccompPersonalities are the personality(2) arguments allowed, as in
// Docker's profile: PER_LINUX, PER_LINUX32, UNAME26 (and with PER_LINUX32),
// and 0xffffffff, which only queries. The persona bits that weaken the
// address space (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...) are refused.
var seccompPersonalities = []uint64{0x0, 0x0008, 0x20000, 0x20008, 0xffffffff}

// seccompNamespaceFlags are the clone flags that create namespaces:
// clone with any of them is refused.
const seccompNamespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// seccompProfile returns the sandbox's seccomp filter (see above). Only
// the 64-bit ABIs are listed: a 32-bit syscall (int 0x80) kills its
// caller (SIGSYS).
func seccompProfile() *specs.LinuxSeccomp {
	eperm := uint(unix.EPERM)
	enosys := uint(unix.ENOSYS)
	sc := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: &eperm,
		Architectures:   []specs.Arch{specs.ArchX86_64, specs.ArchAARCH64},
		Syscalls: []specs.LinuxSyscall{
			{Names: seccompAllowed, Action: specs.ActAllow},
			// clone without namespace flags (the flags are its first
			// argument on x86_64 and arm64).
			{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: seccompNamespaceFlags, ValueTwo: 0, Op: specs.OpMaskedEqual},
			}},
			// clone3 passes its flags in memory seccomp cannot inspect;
			// ENOSYS (not EPERM) makes glibc fall back to clone, as Docker does.
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys},
		},
	}
	for _, af := range seccompSocketFamilies {
		sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{
			Names: []string{"socket"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: af, Op: specs.OpEqualTo}},
		})
	}
	for _, p := range seccompPersonalities {
		sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{
			Names: []string{"personality"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: p, Op: specs.OpEqualTo}},
		})
	}
	return sc
}
