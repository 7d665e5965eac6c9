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

.PHONY: all deps build run test test-unit bench fuzz soak clean fmt assets

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(GO) build -tags $(TAGS) -ldflags '$(LDFLAGS)' -o bin/webtaskd ./cmd/webtaskd
	$(GO) build -tags $(TAGS) -ldflags '$(LDFLAGS)' -o bin/wtctl ./cmd/wtctl

run: build
	./bin/webtaskd serve $(RUN_FLAGS)

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

bench: build
	scripts/bench.sh

# Each fuzz target for FUZZTIME (seeds: testdata/fuzz of each package).
# CI runs it; a failing input is written to testdata/fuzz for the commit
# that fixes it.
FUZZTIME     ?= 3s
FUZZ_TARGETS := ./store/token:FuzzIssueRequest ./store/token:FuzzVerify ./store/token:FuzzValidName \
                ./store:FuzzListMetaFilter ./api:FuzzWebtaskRoutes ./sandbox/agent:FuzzParseResult \
                ./sandbox/agent:FuzzClientFrames
fuzz: deps
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "fuzz $$fn in $$pkg for $(FUZZTIME)"; \
		$(GO) test -tags $(TAGS) -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

# A bounded soak (root; SOAK_FLAGS, default about two minutes): eviction
# churn against a real daemon on loopback; fails when its fds, goroutines,
# RSS, sandboxes or cgroups grow. Not part of CI.
SOAK_FLAGS ?= -duration 2m
soak: build
	$(GO) run ./scripts/soak -bin bin/webtaskd $(SOAK_FLAGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
