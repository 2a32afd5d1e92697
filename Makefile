# mtrelay build and test entry points. `make test` is the one command the
# README and CI (.ci/run) use: it installs the external peers the end-to-end
# tests drive (ffmpeg, ffprobe, squid), smoke-runs every fuzz target, then runs
# the whole test suite with the race detector, whose summary ends the output.

GO        ?= go
FUZZTIME  ?= 20000x
TESTFLAGS ?= -race -timeout 20m -artifacts -outputdir=$(CURDIR)/.artifacts

# CI puts Go in /usr/local/go/bin; appending keeps a user's own Go first.
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin

.PHONY: all build run test test-deps fuzz-smoke fixtures

all: build

build:
	$(GO) build ./...

run:
	$(GO) run ./cmd/mtrelay

# test-deps installs the Debian packages that provide the real peers used by
# the tests, but only when a binary is missing, so repeat runs stay offline.
# squid lives in /usr/sbin, which is not on a normal user's PATH. The session
# tests run a private PostgreSQL 15 cluster from /usr/lib/postgresql/15/bin.
test-deps:
	@set -e; missing=""; \
	command -v ffmpeg  >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	command -v ffprobe >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	command -v squid   >/dev/null 2>&1 || test -x /usr/sbin/squid || missing="$$missing squid"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	test -x /usr/lib/postgresql/15/bin/initdb || missing="$$missing postgresql-15"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	pkgs=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	echo "test-deps: installing $$pkgs"; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	else echo "test-deps: need root or sudo to apt-get install $$pkgs" >&2; exit 1; fi; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$pkgs

# fuzz-smoke runs each Fuzz* target in the module for FUZZTIME, one target
# per `go test` (the -fuzz flag accepts a single target in a single package).
# FUZZTIME is a count of executions, not a duration: a time-based -fuzztime
# sometimes ends a healthy run with "context deadline exceeded" (Go's fuzzing
# coordinator racing its own deadline), which would fail CI for nothing.
# Targets are found by grep, so new ones are picked up without editing this.
fuzz-smoke:
	@set -e; \
	targets=$$(grep -rE --include='*_test.go' --exclude-dir=testdata --exclude-dir=.git \
		-o '^func Fuzz[A-Za-z0-9_]*\(' . | sed -E 's/:func (Fuzz[A-Za-z0-9_]*)\($$/ \1/' | sort -u); \
	if [ -z "$$targets" ]; then echo "fuzz-smoke: no fuzz targets"; exit 0; fi; \
	echo "$$targets" | while read -r file name; do \
		dir=$$(dirname "$$file"); \
		echo "fuzz-smoke: $$dir $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$dir" || exit 1; \
	done

test: test-deps fuzz-smoke
	mkdir -p $(CURDIR)/.artifacts && $(GO) test $(TESTFLAGS) ./...

# fixtures regenerates testdata/fixture.flv (see testdata/README.md).
fixtures:
	bash testdata/gen.sh
