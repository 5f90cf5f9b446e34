package cli

import "runtime/debug"

// The garbage collector's pace for a serving router (issue 14 item 4). A
// router's live heap is small (the pools, the shard map, the caches: tens
// of MiB) while every request allocates (HTTP, rows, JSON), so at Go's
// default GOGC of 100 the collector ran every few MiB of requests and took
// 11-13% of the read benchmark's CPU. Serve lets the heap grow to five
// times what is live (GOGC 400) and caps it softly at serveMemoryLimit
// instead (160 MiB), where the collector runs as often as it must:
// collections are rare while the heap is small, and the resident set
// stays under the 200 MB target when it is not (the read benchmark's whole
// process, clients and samples included, peaked at 176 MiB).
const (
	serveGCPercent   = 400
	serveMemoryLimit = 160 << 20
)

// paceGC applies serveGCPercent and serveMemoryLimit where getenv leaves
// GOGC and GOMEMLIMIT unset, so that an operator's settings of the Go
// runtime win over the router's defaults.
func paceGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(serveMemoryLimit)
	}
}
