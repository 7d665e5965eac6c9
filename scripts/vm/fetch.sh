#!/usr/bin/env bash
# Fetches what the cgroup v2 VM boots and runs, into a cache outside the
# tree (WEBTASKD_VM_CACHE, default /var/cache/webtaskd-vm), with apt only:
#   kernel/        Debian's linux-image-cloud-amd64 (6.1): vmlinuz, overlay.ko
#   node18/        Debian's nodejs 18 and its libraries, extracted (not installed)
# `apt-get download` + `dpkg-deb -x` keep both off the host. Idempotent:
# a filled cache (a stamp per part) is left alone. Run as root (apt).
set -euo pipefail

CACHE=${WEBTASKD_VM_CACHE:-/var/cache/webtaskd-vm}
# Debian's own Node major and the Depends of libnode108 that are not part of
# glibc/gcc (those come from the host, like the test binaries'): the shared
# libraries, and the builtins Debian externalizes to /usr/share/nodejs
# (acorn, acorn-walk, cjs-module-lexer, undici), which node loads at start.
NODE_MAJOR=18
NODE_PKGS=(libnode108 libuv1 libc-ares2 libicu72 libnghttp2-14 libbrotli1 libssl3 zlib1g
	node-acorn node-cjs-module-lexer node-undici)

mkdir -p "$CACHE"
cd "$CACHE"

# apt-get download drops privileges to _apt: give it a directory it may write.
dl_dir() {
	local d=$1
	rm -rf "$d" && mkdir -p "$d" && chown _apt "$d" 2>/dev/null || true
}

fetched=0
if [ ! -e kernel/.stamp ]; then
	echo "vm-fetch: Debian cloud kernel into $CACHE/kernel" >&2
	dl_dir debs-kernel
	pkg=$(apt-cache depends linux-image-cloud-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
	[ -n "$pkg" ] || { echo "vm-fetch: apt knows no linux-image-cloud-amd64 (apt-get update?)" >&2; exit 1; }
	(cd debs-kernel && apt-get download -qq "$pkg")
	rm -rf kernel.tmp && mkdir kernel.tmp
	dpkg-deb -x debs-kernel/*.deb kernel.tmp/x
	cp kernel.tmp/x/boot/vmlinuz-* kernel.tmp/vmlinuz
	ver=$(basename kernel.tmp/x/lib/modules/*)
	# The rootfs needs no module to boot (NVMe and ext4 are built in);
	# overlay lets runc seal /proc/self/exe without a memfd copy.
	cp "kernel.tmp/x/lib/modules/$ver/kernel/fs/overlayfs/overlay.ko" kernel.tmp/
	echo "$pkg $ver" >kernel.tmp/version
	rm -rf kernel.tmp/x kernel debs-kernel
	mv kernel.tmp kernel && touch kernel/.stamp
	fetched=1
fi

if [ ! -e node18/.stamp ]; then
	ver=$(apt-cache show nodejs | sed -n "s/^Version: \($NODE_MAJOR\..*\)$/\1/p" | sort -V | tail -1)
	[ -n "$ver" ] || { echo "vm-fetch: apt offers no nodejs $NODE_MAJOR (Debian 12 bookworm sources needed)" >&2; exit 1; }
	echo "vm-fetch: Debian nodejs $ver into $CACHE/node18" >&2
	dl_dir debs-node
	(cd debs-node && apt-get download -qq "nodejs=$ver" "${NODE_PKGS[@]}")
	rm -rf node18.tmp && mkdir node18.tmp
	for d in debs-node/*.deb; do dpkg-deb -x "$d" node18.tmp; done
	rm -rf node18.tmp/usr/share/{doc,man,lintian}
	echo "$ver" >node18.tmp/VERSION
	rm -rf node18 debs-node
	mv node18.tmp node18 && touch node18/.stamp
	fetched=1
fi
[ "$fetched" = 0 ] || echo "vm-fetch: cache ready in $CACHE" >&2
