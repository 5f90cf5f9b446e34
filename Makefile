# The README's commands. Go and PostgreSQL's server binaries are all they
# need; demo, demo-reset and test install the binaries first when they are
# missing (scripts/ensure-postgres.sh: Debian's postgresql package, as root
# or through sudo).
GO ?= go

.PHONY: build test vet fuzz fuzz-short demo demo-reset postgres promtool chromium clean bin/dmsrouter bin/dmsdev

# bin/dmsrouter is what production runs (and all deploy/Dockerfile builds);
# bin/dmsdev holds the dev tools: seed, demo, bench, ingest.
build: bin/dmsrouter bin/dmsdev

bin/dmsrouter:
	$(GO) build -o bin/dmsrouter ./cmd/dmsrouter

bin/dmsdev:
	$(GO) build -o bin/dmsdev ./cmd/dmsdev

# Every package that needs PostgreSQL starts a throwaway cluster (or reuses
# the server named by PGTEST_DSN); see pgtest/.
# The deploy check (go test ./deploy/) runs promtool: make test installs it
# when missing (scripts/ensure-promtool.sh: Debian's prometheus package),
# and chromium for the status page's browser test (scripts/ensure-chromium.sh).
test: postgres promtool chromium vet fuzz-short
	$(GO) test -count=1 -timeout 15m ./...

# Every fuzz target (func FuzzX in a _test.go file; `go test` also runs each
# over its seed corpus) for FUZZTIME, one after another: see .ci/fuzz. Each
# fuzzing worker is a test process of its own (it reuses its package's
# PostgreSQL server), so FUZZPARALLEL (workers per target) stays low. An
# input that fails is written to testdata/fuzz/ of its package: commit it
# with the fix, and every `go test` runs it from then on.
FUZZTIME ?= 30s
FUZZPARALLEL ?= 1
fuzz:
	GO=$(GO) .ci/fuzz $(FUZZTIME) $(FUZZPARALLEL)

# make test runs every fuzz target for a few seconds.
fuzz-short:
	GO=$(GO) .ci/fuzz 5s 1

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

# The demo runs the built binary, not go run: go run reports a child that
# a signal stopped as a failure although it exits 0, and make then prints
# an error after every Ctrl-C.
demo: postgres bin/dmsdev
	bin/dmsdev demo --config configs/dev.yaml

# The demo with its shards emptied and seeded again first.
demo-reset: postgres bin/dmsdev
	bin/dmsdev demo --config configs/dev.yaml --reset

postgres:
	@scripts/ensure-postgres.sh

promtool:
	@scripts/ensure-promtool.sh

chromium:
	@scripts/ensure-chromium.sh

clean:
	rm -rf bin
