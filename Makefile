# webtaskd — see README.md. Every target installs the system packages it
# needs (scripts/install-deps.sh) when they are missing.

SHELL      := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
export CGO_ENABLED := 1
# The go on PATH when it is recent enough, else the one install-deps puts
# in /usr/local/go (Debian's own Go is too old).
GO         ?= $(shell go version 2>/dev/null | grep -qE 'go1\.(2[1-9]|[3-9][0-9])' && echo go || echo /usr/local/go/bin/go)
TAGS       := seccomp
VERSION    ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS    := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# make run keeps its data in ./var; sandbox state stays on /run (tmpfs).
RUN_FLAGS  ?= --data-dir $(CURDIR)/var

.PHONY: all deps deps-vm build run cluster bench-cluster test test-cgroupv2 test-unit bench fuzz soak clean fmt assets install uninstall

# make install: DESTDIR stages the whole tree under another root (tests,
# packages); PREFIX is where the binaries live on the target.
DESTDIR    ?=
PREFIX     ?= /usr/local
BINDIR     := $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR    ?= /etc/systemd/system
DATADIR    ?= /var/lib/webtaskd

all: build

deps:
	@scripts/install-deps.sh

# What test-cgroupv2 needs beyond deps: QEMU, and Debian's cloud kernel and
# nodejs 18 in /var/cache/webtaskd-vm (apt-get download, never installed).
deps-vm:
	@scripts/install-deps.sh vm

build: deps
	$(GO) build -tags $(TAGS) -ldflags '$(LDFLAGS)' -o bin/webtaskd ./cmd/webtaskd
	$(GO) build -tags $(TAGS) -ldflags '$(LDFLAGS)' -o bin/wtctl ./cmd/wtctl

run: build
	./bin/webtaskd serve $(RUN_FLAGS)

# A cluster on this machine for trying it: PostgreSQL, three members and
# HAProxy on 127.0.0.1:8730 (docs/CLUSTER.md); Ctrl-C stops it.
cluster: build
	scripts/cluster/run.sh

# Cluster figures (not a CI gate): 3-vs-1 throughput, HAProxy vs direct
# latency, revocation and invalidation latencies (docs/PERFORMANCE.md).
bench-cluster: deps
	$(GO) test -tags $(TAGS) -count=1 -run '^$$' -bench . -benchtime 1x -timeout 20m ./daemon/clustertest

# Vet plus every test. Sandbox and end-to-end tests need root (they start
# real libcontainer sandboxes) and say so loudly when skipped.
test: deps
	@test "$$(id -u)" = 0 || echo "WARNING: not root: sandbox and end-to-end tests will be SKIPPED" >&2
	$(GO) vet -tags $(TAGS) ./...
	$(GO) test -tags $(TAGS) -count=1 -timeout 25m ./...

# The editor's bundle (api/editor/dist, committed): npm ci of the pinned
# packages, then esbuild through its Go API. Deterministic: CI rebuilds it
# and fails on any difference.
assets: deps
	cd api/editor/web && npm ci --ignore-scripts --no-audit --no-fund
	$(GO) run ./scripts/editorbuild

# The cgroup v2 subset of the sandbox and end-to-end tests in a QEMU VM:
# only cgroup2 mounted, systemd's delegated layout, Debian's nodejs 18.
# Fails when a test fails or is skipped (docs/SANDBOXES.md, "cgroup v2").
test-cgroupv2: deps-vm
	GO=$(GO) scripts/vm/run.sh

bench: build
	scripts/bench.sh

# Each fuzz target for FUZZTIME (seeds: testdata/fuzz of each package).
# CI runs it; a failing input is written to testdata/fuzz for the commit
# that fixes it. A count of executions, not a duration: go1.26's fuzz
# coordinator can fail a duration run at its deadline with a bare "context
# deadline exceeded" and no failing input (golang/go#75804, fixed in
# go1.27), which it did in CI on a busy machine. 20000x: 1-60 s a target.
FUZZTIME     ?= 20000x
FUZZ_TARGETS := ./store/token:FuzzIssueRequest ./store/token:FuzzVerify ./store/token:FuzzValidName \
                ./store:FuzzListMetaFilter ./api:FuzzWebtaskRoutes ./sandbox/agent:FuzzParseResult \
                ./sandbox/agent:FuzzClientFrames
fuzz: deps
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "fuzz $$fn in $$pkg, -fuzztime $(FUZZTIME)"; \
		$(GO) test -tags $(TAGS) -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

# A bounded soak (root; SOAK_FLAGS, default about two minutes): eviction
# churn against a real daemon on loopback; fails when its fds, goroutines,
# RSS, sandboxes or cgroups grow. Not part of CI.
SOAK_FLAGS ?= -duration 2m
soak: build
	$(GO) run ./scripts/soak -bin bin/webtaskd $(SOAK_FLAGS)

# Binaries, config (kept when present), data dir (0700) and the systemd
# unit; enabled and started when systemd is PID 1 and DESTDIR is empty.
install: build
	@test "$$(id -u)" = 0 || { echo "make install: run as root" >&2; exit 1; }
	install -D -m 0755 bin/webtaskd $(DESTDIR)$(BINDIR)/webtaskd
	install -D -m 0755 bin/wtctl $(DESTDIR)$(BINDIR)/wtctl
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/webtaskd
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/webtaskd/config.json ]; then \
		echo "keeping $(DESTDIR)$(SYSCONFDIR)/webtaskd/config.json"; \
	else \
		bin/webtaskd config-defaults --data-dir $(DATADIR) > $(DESTDIR)$(SYSCONFDIR)/webtaskd/.config.json.tmp && \
		chmod 0640 $(DESTDIR)$(SYSCONFDIR)/webtaskd/.config.json.tmp && \
		mv $(DESTDIR)$(SYSCONFDIR)/webtaskd/.config.json.tmp $(DESTDIR)$(SYSCONFDIR)/webtaskd/config.json && \
		echo "wrote $(DESTDIR)$(SYSCONFDIR)/webtaskd/config.json"; \
	fi
	install -d -m 0700 $(DESTDIR)$(DATADIR)
	chmod 0700 $(DESTDIR)$(DATADIR)
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' scripts/systemd/webtaskd.service \
		> $(DESTDIR)$(UNITDIR)/webtaskd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/webtaskd.service
	@if [ -n "$(DESTDIR)" ]; then \
		echo "DESTDIR set: not enabling or starting the service"; \
	elif [ "$$(ps -p 1 -o comm= 2>/dev/null)" != systemd ]; then \
		echo "systemd is not PID 1: not enabling or starting webtaskd.service (start it: $(BINDIR)/webtaskd serve --config $(SYSCONFDIR)/webtaskd/config.json)"; \
	else \
		systemctl daemon-reload && systemctl enable webtaskd.service && systemctl restart webtaskd.service && \
		echo "webtaskd.service enabled and started; master token: $(DATADIR)/master.token"; \
	fi

# Removes what install wrote but the config and the data; PURGE=1 removes
# them too.
uninstall:
	@test "$$(id -u)" = 0 || { echo "make uninstall: run as root" >&2; exit 1; }
	@if [ -z "$(DESTDIR)" ] && [ "$$(ps -p 1 -o comm= 2>/dev/null)" = systemd ]; then \
		systemctl disable --now webtaskd.service || true; \
	fi
	rm -f $(DESTDIR)$(UNITDIR)/webtaskd.service $(DESTDIR)$(BINDIR)/webtaskd $(DESTDIR)$(BINDIR)/wtctl
	@if [ -z "$(DESTDIR)" ] && [ "$$(ps -p 1 -o comm= 2>/dev/null)" = systemd ]; then systemctl daemon-reload; fi
	@if [ "$(PURGE)" = 1 ]; then \
		rm -rf $(DESTDIR)$(SYSCONFDIR)/webtaskd $(DESTDIR)$(DATADIR) && echo "purged the config and $(DESTDIR)$(DATADIR)"; \
	else \
		echo "kept $(DESTDIR)$(SYSCONFDIR)/webtaskd and $(DESTDIR)$(DATADIR) (PURGE=1 removes them)"; \
	fi

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
