package shardmap

import (
	"sync"
	"time"

	"github.com/dmshub/dmsrouter/logbucket"
)

// The rolling window of a server's calls, for the status page: the last
// windowSeconds seconds, one slot per second, each a histogram of call
// durations over fixed logarithmic buckets and a count of failed calls.
// Its size never depends on the traffic, and recording a call costs a
// lock, a few integer operations and no allocation.
const (
	windowSeconds = 60
	// subBits splits each power of two into 4 buckets (package logbucket):
	// a bucket's upper bound is at most 25% above its lower one, and a
	// quantile is read as the bucket's middle.
	subBits = 2
	// latencyBuckets cover 0 to about 2^27 µs (134 s) and beyond, in the last.
	latencyBuckets = 104 // logbucket.Count(27, subBits); an array length must be a constant
)

// window is a server's calls over the last windowSeconds seconds.
type window struct {
	mu    sync.Mutex
	slots [windowSeconds]slot
}

// slot is one second of a window.
type slot struct {
	sec    int64 // the Unix second it counts; another second means it is stale
	counts [latencyBuckets]uint32
	failed uint32
}

// latencyBucket returns the bucket of a duration of us microseconds
// (logbucket.Index), the last for all from 2^27 µs up.
func latencyBucket(us uint64) int {
	return min(logbucket.Index(us, subBits), latencyBuckets-1)
}

// bucketBounds returns bucket i's lower and upper bound in microseconds,
// the upper one excluded.
func bucketBounds(i int) (lo, hi uint64) {
	return logbucket.Lower(i, subBits), logbucket.Upper(i, subBits) + 1
}

// record counts a call that ended at end and took d; a failed call
// (infrastructure: unavailable or timed out) counts as a failure and not
// in the durations, which are those of calls the server answered.
func (w *window) record(end time.Time, d time.Duration, failed bool) {
	sec := end.Unix()
	w.mu.Lock()
	defer w.mu.Unlock()
	s := &w.slots[sec%windowSeconds]
	if s.sec != sec {
		*s = slot{sec: sec}
	}
	if failed {
		s.failed++
		return
	}
	s.counts[latencyBucket(uint64(max(d, 0)/time.Microsecond))]++
}

// Latency is a server's calls over the last minute as the router made
// them: how many, how many failed, and the quantiles of the durations of
// the others (the middle of their histogram bucket, within 12.5%).
type Latency struct {
	Calls  int64         `json:"calls"`
	Failed int64         `json:"failed"`
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
}

// ErrorRate returns the share of the calls that failed, 0 without calls.
func (l Latency) ErrorRate() float64 {
	if l.Calls == 0 {
		return 0
	}
	return float64(l.Failed) / float64(l.Calls)
}

// summary returns the calls of the windowSeconds seconds up to now.
func (w *window) summary(now time.Time) Latency {
	var counts [latencyBuckets]int64
	var l Latency
	from := now.Unix() - windowSeconds
	w.mu.Lock()
	for i := range w.slots {
		s := &w.slots[i]
		if s.sec <= from || s.sec > now.Unix() {
			continue
		}
		l.Failed += int64(s.failed)
		for b, n := range s.counts {
			counts[b] += int64(n)
		}
	}
	w.mu.Unlock()
	var answered int64
	for _, n := range counts {
		answered += n
	}
	l.Calls = answered + l.Failed
	l.P50, l.P99 = quantile(&counts, answered, 0.50), quantile(&counts, answered, 0.99)
	return l
}

// quantile returns the q-quantile of the n durations counted in counts,
// as the middle of its bucket; 0 when n is 0.
func quantile(counts *[latencyBuckets]int64, n int64, q float64) time.Duration {
	if n == 0 {
		return 0
	}
	rank := int64(q*float64(n-1)) + 1 // the rank-th smallest, 1-based
	var seen int64
	for i, c := range counts {
		if seen += c; seen >= rank {
			lo, hi := bucketBounds(i)
			return time.Duration(lo+hi) * time.Microsecond / 2
		}
	}
	return 0
}
