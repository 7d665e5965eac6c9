#!/usr/bin/env bash
# Installs the system packages webtaskd needs to build, run and test, when
# they are missing. Idempotent and quiet when everything is there. Debian and
# Ubuntu (apt); run as root.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

for pkg in gcc libc6-dev make pkg-config libseccomp-dev tini ca-certificates; do
	have_pkg "$pkg" || need+=("$pkg")
done
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)

if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing packages: ${need[*]}; run as root (or: sudo apt-get install ${need[*]})" >&2
		exit 1
	fi
	echo "install-deps: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Go is not taken from apt: Debian 12 ships Go 1.19, and webtaskd needs the
# go.mod version (Go >= 1.21 fetches newer toolchains itself).
GO=$(command -v go || true)
[ -n "$GO" ] || [ ! -x /usr/local/go/bin/go ] || GO=/usr/local/go/bin/go
if [ -z "$GO" ]; then
	echo "install-deps: Go is missing. Install Go >= 1.21 (https://go.dev/doc/install) into /usr/local/go." >&2
	exit 1
fi
minor=$("$GO" env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if [ "${minor:-0}" -lt 21 ]; then
	echo "install-deps: $("$GO" version) is too old; install Go >= 1.21 (https://go.dev/doc/install)." >&2
	exit 1
fi
