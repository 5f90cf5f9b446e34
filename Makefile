# The README's commands. Go and PostgreSQL's server binaries (Debian:
# apt-get install postgresql) are all they need.
GO ?= go

.PHONY: build test vet fuzz fuzz-short demo clean

# bin/dmsrouter is what production runs (and all deploy/Dockerfile builds);
# bin/dmsdev holds the dev tools: seed, demo, bench, ingest.
build:
	$(GO) build -o bin/dmsrouter ./cmd/dmsrouter
	$(GO) build -o bin/dmsdev ./cmd/dmsdev

# Every package that needs PostgreSQL starts a throwaway cluster (or reuses
# the server named by PGTEST_DSN); see pgtest/.
test: vet fuzz-short
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

demo:
	$(GO) run ./cmd/dmsdev demo --config configs/dev.yaml

clean:
	rm -rf bin
