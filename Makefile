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
# over its seed corpus) for FUZZTIME, one after another. Each fuzzing worker
# is a test process of its own, which starts its own PostgreSQL where the
# package needs one, so FUZZPARALLEL (workers per target) stays low.
# New inputs that fail are written to testdata/fuzz/ of the package: commit
# them with the fix, and they run in every `go test` from then on.
FUZZTIME ?= 30s
FUZZPARALLEL ?= 1
fuzz:
	@set -e; for f in $$(git grep --untracked -l '^func Fuzz' -- '*_test.go'); do \
	  for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	    echo "$(GO) test -run='^$$' -fuzz='^$$name\$$' -fuzztime=$(FUZZTIME) ./$$(dirname $$f)"; \
	    $(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) -parallel=$(FUZZPARALLEL) ./$$(dirname $$f); \
	  done; \
	done

# make test runs every fuzz target for a few seconds.
fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=5s

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

demo:
	$(GO) run ./cmd/dmsdev demo --config configs/dev.yaml

clean:
	rm -rf bin
