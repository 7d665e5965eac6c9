#!/usr/bin/env bash
# Runs the cgroup v2 subset of the sandbox and end-to-end tests inside a
# QEMU VM (TCG: no KVM needed) booting Debian 12's cloud kernel with only the
# unified cgroup2 hierarchy mounted and Debian's nodejs 18 as the Node.
#
#   1. builds the test binaries (go test -c) and scripts/vm/vminit (PID 1);
#   2. assembles a root filesystem: those, bash + ldd (rootfs.Build runs
#      ldd), tini-static, Debian's node 18 and the shared libraries of all
#      of them (found with ldd), into an ext4 image (mkfs.ext4 -d);
#   3. boots it (root on NVMe, built into the kernel: no initramfs, no 9p);
#      vminit runs the plan and prints everything on the serial console;
#      a VM that never reaches vminit, or whose console then stays silent
#      for 5 minutes, is killed and booted once more from a fresh image;
#   4. fails unless the console's last verdict says every test passed and
#      none was skipped.
#
# Needs root (mkfs of a file is fine unprivileged, but the caller is make
# test-cgroupv2, after `scripts/install-deps.sh vm`), the cache filled by
# scripts/vm/fetch.sh and no network in the VM. Knobs (environment):
#   WEBTASKD_VM_CACHE       the cache of fetch.sh (/var/cache/webtaskd-vm)
#   WEBTASKD_VM_OUT         build dir, image, console log (var/vm in the tree)
#   WEBTASKD_VM_TIME_SCALE  the tests' time-scale factor (default 10: TCG)
#   WEBTASKD_VM_TIMEOUT     wall-clock bound of the VM in seconds (600)
#   WEBTASKD_VM_BOOT_TIMEOUT  seconds for the VM to reach vminit's first line
#                           before it is killed as hung (60; ~3 s normally)
#   WEBTASKD_VM_SILENCE_TIMEOUT  seconds without console output, once
#                           vminit is up, before the VM is killed as hung
#                           (300; vminit prints a heartbeat every 30 s)
#   WEBTASKD_VM_BOOT_ATTEMPTS  boots tried when one hangs so (2)
#   WEBTASKD_VM_{SANDBOX,DAEMON,WTCTL}_RUN  -test.run patterns
#   WEBTASKD_VM_CPUS / WEBTASKD_VM_MEMORY_MB          (2 / 2048)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

GO=${GO:-go}
CACHE=${WEBTASKD_VM_CACHE:-/var/cache/webtaskd-vm}
OUT=${WEBTASKD_VM_OUT:-$ROOT/var/vm}
SCALE=${WEBTASKD_VM_TIME_SCALE:-10}
TIMEOUT=${WEBTASKD_VM_TIMEOUT:-600}
BOOT_TIMEOUT=${WEBTASKD_VM_BOOT_TIMEOUT:-60}
BOOT_ATTEMPTS=${WEBTASKD_VM_BOOT_ATTEMPTS:-2}
SILENCE_TIMEOUT=${WEBTASKD_VM_SILENCE_TIMEOUT:-300}
CPUS=${WEBTASKD_VM_CPUS:-2}
MEM=${WEBTASKD_VM_MEMORY_MB:-2048}
# The subset that covers every cgroup code path (docs/SANDBOXES.md, "cgroup v2").
SANDBOX_RUN=${WEBTASKD_VM_SANDBOX_RUN:-'^(TestCgroupLimitsApplied|TestPresetBackgroundWeight|TestDestroyAndPause|TestExternalFreezeThawed|TestSweepAfterDaemonCrash)$'}
DAEMON_RUN=${WEBTASKD_VM_DAEMON_RUN:-'^(TestFleetFreezeThawKeepsGlobal|TestFleetFailuresContained|TestKillNineRecovery|TestFleetNothingLeftAfterStop|TestMetricsScrapeCleanly)$'}
WTCTL_RUN=${WEBTASKD_VM_WTCTL_RUN:-'^TestSandboxesInspectStatusLimitsKillTop$'}

for f in "$CACHE/kernel/vmlinuz" "$CACHE/kernel/overlay.ko" "$CACHE/node18/usr/bin/node"; do
	[ -e "$f" ] || { echo "vm: $f missing: run scripts/install-deps.sh vm (make deps-vm)" >&2; exit 1; }
done
command -v qemu-system-x86_64 >/dev/null || { echo "vm: qemu-system-x86_64 missing: make deps-vm" >&2; exit 1; }

t0=$(date +%s)
rm -rf "$OUT/build" "$OUT/staging"
mkdir -p "$OUT/build"
echo "vm: building test binaries" >&2
CGO_ENABLED=1 "$GO" test -c -tags seccomp -o "$OUT/build/sandbox.test" ./sandbox
CGO_ENABLED=1 "$GO" test -c -tags seccomp -o "$OUT/build/daemon.test" ./daemon
CGO_ENABLED=1 "$GO" test -c -tags seccomp -o "$OUT/build/wtctl.test" ./cmd/wtctl
CGO_ENABLED=0 "$GO" build -o "$OUT/build/vminit" ./scripts/vm/vminit
t1=$(date +%s)

echo "vm: assembling the root filesystem" >&2
S=$OUT/staging
mkdir -p "$S"/{usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,usr/lib64,etc,proc,sys,dev,run,tmp,root,var/tmp,vmtest,usr/share}
ln -s usr/bin "$S/bin"
ln -s usr/sbin "$S/sbin"
ln -s usr/lib "$S/lib"
ln -s usr/lib64 "$S/lib64"
install -m 0755 "$OUT/build/vminit" "$S/usr/sbin/vminit"
install -m 0755 "$OUT/build/sandbox.test" "$OUT/build/daemon.test" "$OUT/build/wtctl.test" "$S/vmtest/"
install -m 0644 "$CACHE/kernel/overlay.ko" "$S/vmtest/"
install -m 0755 "$(command -v bash)" "$S/usr/bin/bash"
ln -s bash "$S/usr/bin/sh"
install -m 0755 "$(command -v ldd)" "$S/usr/bin/ldd"
install -m 0755 /usr/bin/tini-static "$S/usr/bin/tini-static"
# Debian's node 18: the binary, its libraries, its externalized builtins.
install -m 0755 "$CACHE/node18/usr/bin/node" "$S/usr/bin/node"
cp -a "$CACHE/node18/usr/share/nodejs" "$S/usr/share/"
NODELIBS=$CACHE/node18/usr/lib/x86_64-linux-gnu:$CACHE/node18/lib/x86_64-linux-gnu
for bin in "$S/usr/bin/bash" "$S/usr/bin/node" "$S"/vmtest/*.test; do
	LD_LIBRARY_PATH=$NODELIBS ldd "$bin" | awk '/=> \// {print $3} /^\t\/[^ ]+ \(/ {print $1}'
done | sort -u | while read -r lib; do
	case "$lib" in
	*/ld-linux-x86-64.so.2) cp -L "$lib" "$S/usr/lib64/" ;;
	*) cp -L "$lib" "$S/usr/lib/x86_64-linux-gnu/" ;;
	esac
done
ln -sf ../lib64/ld-linux-x86-64.so.2 "$S/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
ldconfig -r "$S" 2>/dev/null || true
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$S/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$S/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$S/etc/hosts"
printf '%s\n' "/vmtest/sandbox.test -test.v -test.count=1 -test.timeout=9m -test.run $SANDBOX_RUN" \
	"/vmtest/daemon.test -test.v -test.count=1 -test.timeout=9m -test.run $DAEMON_RUN" \
	"/vmtest/wtctl.test -test.v -test.count=1 -test.timeout=9m -test.run $WTCTL_RUN" >"$S/vmtest/plan"
# The tests' cgroup parents go below the service's delegated cgroup, as a
# daemon configured per docs/SANDBOXES.md puts its sandboxes.
printf '%s\n' "WEBTASKD_TEST_TIME_SCALE=$SCALE" \
	"WEBTASKD_TEST_CGROUP_ROOT=/system.slice/webtaskd.service" >"$S/vmtest/env"

size_mb=$(($(du -sm "$S" | cut -f1) * 5 / 4 + 128))
rm -f "$OUT/root.img"
mkfs.ext4 -q -F -L vmroot -d "$S" "$OUT/root.img" "${size_mb}M"
rm -rf "$S"
t2=$(date +%s)

LOG=$OUT/console.log
# A retry boots the image as mkfs left it, not as the hung run left it.
cp --sparse=always "$OUT/root.img" "$OUT/root.img.pristine"
# boot_vm ATTEMPT: runs the VM, console to the terminal and $LOG. A watchdog
# kills a VM that has not reached vminit's first line after $BOOT_TIMEOUT
# seconds (QEMU TCG has been seen to hang after SeaBIOS's "Booting from ROM",
# before the kernel printed anything), or whose console then stays silent
# for $SILENCE_TIMEOUT seconds although vminit prints a heartbeat every
# 30 s (a guest seen spinning both vCPUs mid-test for ten minutes without a
# line, not even the test binary's own timeout panic), and sets hung. A
# deadlocked test does not silence the heartbeat.
boot_vm() {
	echo "vm: booting $(cat "$CACHE/kernel/version") under QEMU TCG ($CPUS cpus, $MEM MiB, bound ${TIMEOUT}s, attempt $1 of $BOOT_ATTEMPTS)" >&2
	rm -f "$OUT/qemu.pid" "$OUT/qemu.rc"
	hung=0
	: >"$LOG"
	( timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 \
		-machine q35,accel=tcg -cpu max -smp "$CPUS" -m "$MEM" \
		-nographic -monitor none -no-reboot -nic none -pidfile "$OUT/qemu.pid" \
		-kernel "$CACHE/kernel/vmlinuz" \
		-append "console=ttyS0 root=/dev/nvme0n1 rw rootfstype=ext4 init=/usr/sbin/vminit panic=-1 quiet loglevel=4" \
		-drive "file=$OUT/root.img,if=none,id=root,format=raw" -device nvme,drive=root,serial=vmroot \
		</dev/null 2>&1 && rc=0 || rc=$?
	  echo "$rc" >"$OUT/qemu.rc" ) | sed -u 's/\r$//' | tee "$LOG" &
	local vm=$! waited=0 up=0 size=0 quiet=0 now
	# Polled once a second while the VM runs.
	while kill -0 "$vm" 2>/dev/null; do
		if [ "$up" = 0 ] && grep -q '^VMTEST kernel' "$LOG"; then
			echo "vm: vminit up after about ${waited}s" >&2
			up=1
		fi
		now=$(stat -c %s "$LOG")
		if [ "$now" != "$size" ]; then size=$now quiet=0; else quiet=$((quiet + 1)); fi
		if [ "$up" = 0 ] && [ "$waited" -ge "$BOOT_TIMEOUT" ]; then
			echo "vm: no output from vminit after ${BOOT_TIMEOUT}s: killing the VM" >&2
			hung=1
		elif [ "$up" = 1 ] && [ "$quiet" -ge "$SILENCE_TIMEOUT" ] && ! grep -q '^VMTEST RESULT' "$LOG"; then
			echo "vm: no console output for ${SILENCE_TIMEOUT}s: killing the VM" >&2
			hung=1
		fi
		if [ "$hung" = 1 ]; then
			kill -9 "$(cat "$OUT/qemu.pid" 2>/dev/null)" 2>/dev/null || true
			break
		fi
		sleep 1
		waited=$((waited + 1))
	done
	wait "$vm" || true
}
attempt=1
while :; do
	boot_vm "$attempt"
	[ "$hung" = 1 ] && [ "$attempt" -lt "$BOOT_ATTEMPTS" ] || break
	cp "$LOG" "$OUT/console.attempt$attempt.log"
	echo "vm: attempt $attempt hung (its console: $OUT/console.attempt$attempt.log); booting the pristine image again" >&2
	cp --sparse=always "$OUT/root.img.pristine" "$OUT/root.img"
	attempt=$((attempt + 1))
done
rm -f "$OUT/root.img.pristine"
qemu_rc=$(cat "$OUT/qemu.rc" 2>/dev/null || echo none)
t3=$(date +%s)

echo "vm: build $((t1 - t0))s, image $((t2 - t1))s, VM $((t3 - t2))s (qemu exit $qemu_rc)" >&2
grep -E '^VMTEST (kernel|node|/sys/fs/cgroup/cgroup.controllers)' "$LOG" >&2 || true
result=$(grep -E '^VMTEST RESULT ' "$LOG" | tail -1 || true)
if [ -z "$result" ] && [ "$hung" = 1 ]; then
	echo "vm: FAIL: the VM hung in each of $BOOT_ATTEMPTS boots (no vminit after ${BOOT_TIMEOUT}s or no output for ${SILENCE_TIMEOUT}s); see $OUT/console*.log" >&2
	exit 1
fi
if [ -z "$result" ]; then
	echo "vm: FAIL: no verdict on the console (timeout after ${TIMEOUT}s or a crash); see $LOG" >&2
	exit 1
fi
echo "vm: $result" >&2
case "$result" in
*" failed=0 skipped=0 exit=0") echo "vm: PASS" >&2 ;;
*) echo "vm: FAIL (failures, skips or a test binary's error; see $LOG)" >&2; exit 1 ;;
esac
