#!/usr/bin/env bash
# Installs the system packages webtaskd needs to build, run and test, when
# they are missing. Idempotent and quiet when everything is there. Debian and
# Ubuntu (apt); run as root.
#
# `install-deps.sh vm` also installs what `make test-cgroupv2` needs: QEMU,
# e2fsprogs (mkfs.ext4 -d), and, through scripts/vm/fetch.sh, Debian's
# cloud kernel and nodejs 18 extracted into a cache (never installed).
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

pkgs=(gcc libc6-dev make pkg-config libseccomp-dev tini ca-certificates)
if [ "${1:-}" = vm ]; then
	pkgs+=(qemu-system-x86 e2fsprogs)
fi
for pkg in "${pkgs[@]}"; do
	have_pkg "$pkg" || need+=("$pkg")
done
command -v node >/dev/null 2>&1 || need+=(nodejs)
# The editor's browser tests drive Debian's chromium (api/editor).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(npm)
# systemd-analyze verifies the unit `make install` writes (its test), even
# where PID 1 is not systemd; ruby -c checks the Vagrantfile (CI).
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v ruby >/dev/null 2>&1 || need+=(ruby)
# The PostgreSQL store's tests run throwaway servers (store/pgtest: initdb and
# pg_ctl from /usr/lib/postgresql/*/bin); the cluster tests route through
# HAProxy.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
command -v haproxy >/dev/null 2>&1 || have_pkg haproxy || need+=(haproxy)

if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing packages: ${need[*]}; run as root (or: sudo apt-get install ${need[*]})" >&2
		exit 1
	fi
	echo "install-deps: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	# Debian's postgresql package creates and starts a "main" cluster on
	# install; webtaskd never uses it (tests run their own servers): ask
	# postgresql-common not to create it.
	if [[ " ${need[*]} " == *" postgresql "* ]]; then
		conf=/etc/postgresql-common/createcluster.conf
		mkdir -p "$(dirname "$conf")"
		touch "$conf"
		sed -i '/^[[:space:]]*create_main_cluster[[:space:]]*=/d' "$conf"
		echo 'create_main_cluster = false' >>"$conf"
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Go: Debian 12 ships Go 1.19, too old for go.mod. When no Go >= 1.21 is
# found, install the toolchain go.mod names from the Go module proxy (the
# golang.org/toolchain module, what `go` itself downloads for GOTOOLCHAIN),
# verified against the sha256 pinned below, into GO_INSTALL_DIR.
GO_VERSION=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$(dirname "$0")/../go.mod")
declare -A GO_SHA256=(
	# update both when go.mod's go line changes: curl -fsSL <url> | sha256sum
	[1.26.8-amd64]=30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7
	[1.26.8-arm64]=02b36b6787b3ac767668f630e2998df45a3b1f9ffee08d1bf3ef6487cd658d99
)
GO_INSTALL_DIR=${GO_INSTALL_DIR:-/usr/local/go}

go_ok() { # $1: a go binary
	local minor
	minor=$("$1" env GOVERSION 2>/dev/null | sed -E 's/^go1\.([0-9]+).*/\1/')
	[ -n "$minor" ] && [ "$minor" -ge 21 ]
}

install_go() {
	local arch sum proxy url tmp
	arch=$(dpkg --print-architecture)
	sum=${GO_SHA256[$GO_VERSION-$arch]:-}
	if [ -z "$sum" ]; then
		echo "install-deps: no pinned checksum for Go $GO_VERSION on $arch; install Go >= 1.21 yourself (https://go.dev/doc/install)" >&2
		exit 1
	fi
	for tool in curl unzip; do
		command -v "$tool" >/dev/null 2>&1 || apt-get install -y -qq --no-install-recommends "$tool" >/dev/null
	done
	proxy=${GOPROXY:-https://proxy.golang.org}
	proxy=${proxy%%,*}
	case "$proxy" in direct | off | "") proxy=https://proxy.golang.org ;; esac
	url="$proxy/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-$arch.zip"
	echo "install-deps: installing Go $GO_VERSION into $GO_INSTALL_DIR from $url" >&2
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	curl -fsSL "$url" -o "$tmp/go.zip"
	if ! echo "$sum  $tmp/go.zip" | sha256sum -c --quiet -; then
		echo "install-deps: checksum mismatch for $url" >&2
		exit 1
	fi
	unzip -q "$tmp/go.zip" -d "$tmp/x"
	# Module zips carry no file modes: the binaries get theirs back here.
	chmod +x "$tmp/x/golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-$arch"/bin/* \
		"$tmp/x/golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-$arch"/pkg/tool/*/*
	rm -rf "$GO_INSTALL_DIR"
	mkdir -p "$(dirname "$GO_INSTALL_DIR")"
	mv "$tmp/x/golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-$arch" "$GO_INSTALL_DIR"
}

GO=$(command -v go || true)
{ [ -n "$GO" ] && go_ok "$GO"; } || GO="$GO_INSTALL_DIR/bin/go"
if ! go_ok "$GO"; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: Go >= 1.21 is missing; run as root to install Go $GO_VERSION, or install it yourself (https://go.dev/doc/install)" >&2
		exit 1
	fi
	install_go
	go_ok "$GO" || { echo "install-deps: the installed Go does not run" >&2; exit 1; }
fi

if [ "${1:-}" = vm ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: the VM's kernel and node are fetched with apt as root" >&2
		exit 1
	fi
	"$(dirname "$0")/vm/fetch.sh"
fi
