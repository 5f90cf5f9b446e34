# The README's commands. Go and PostgreSQL's server binaries (Debian:
# apt-get install postgresql) are all they need.
GO ?= go

.PHONY: build test vet demo clean

# bin/dmsrouter is what production runs (and all deploy/Dockerfile builds);
# bin/dmsdev holds the dev tools: seed, demo, bench, ingest.
build:
	$(GO) build -o bin/dmsrouter ./cmd/dmsrouter
	$(GO) build -o bin/dmsdev ./cmd/dmsdev

# Every package that needs PostgreSQL starts a throwaway cluster (or reuses
# the server named by PGTEST_DSN); see pgtest/.
test: vet
	$(GO) test -count=1 -timeout 15m ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

demo:
	$(GO) run ./cmd/dmsdev demo --config configs/dev.yaml

clean:
	rm -rf bin
