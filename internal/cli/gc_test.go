package cli

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestPaceGC checks that Serve's collector defaults apply only where the
// environment sets neither GOGC nor GOMEMLIMIT.
func TestPaceGC(t *testing.T) {
	percent, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
	read := func() (int, int64) {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p, debug.SetMemoryLimit(-1) // a negative limit reads it
	}

	paceGC(func(string) string { return "" })
	if p, l := read(); p != serveGCPercent || l != serveMemoryLimit {
		t.Errorf("environment unset: GOGC %d, memory limit %d; want %d and %d", p, l, serveGCPercent, serveMemoryLimit)
	}

	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
	paceGC(func(k string) string { return map[string]string{"GOGC": "100", "GOMEMLIMIT": "1GiB"}[k] })
	if p, l := read(); p != 100 || l != math.MaxInt64 {
		t.Errorf("environment set: GOGC %d, memory limit %d; want them left as they were", p, l)
	}
}
