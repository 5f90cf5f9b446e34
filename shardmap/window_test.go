package shardmap

import (
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/logbucket"
)

func TestLatencyBucket(t *testing.T) {
	for us := uint64(0); us < 1<<28; us = us*9/8 + 1 {
		i := latencyBucket(us)
		lo, hi := bucketBounds(i)
		if i < latencyBuckets-1 && (us < lo || us >= hi) {
			t.Fatalf("latencyBucket(%d) = %d with bounds [%d, %d), want them around it", us, i, lo, hi)
		}
		if lo >= 1<<subBits && float64(hi-lo)/float64(lo) > 0.25 {
			t.Fatalf("bucket %d = [%d, %d) is wider than 25%%", i, lo, hi)
		}
	}
	if n := logbucket.Count(27, subBits); n != latencyBuckets {
		t.Errorf("latencyBuckets = %d, want logbucket.Count(27, %d) = %d", latencyBuckets, subBits, n)
	}
	if i := latencyBucket(1 << 40); i != latencyBuckets-1 {
		t.Errorf("latencyBucket(2^40) = %d, want the last, %d", i, latencyBuckets-1)
	}
}

// TestWindow checks what a window summarises. Its quantiles are the middle
// of their bucket: 1ms reads as 960µs (bucket [896µs, 1024µs)), 100ms as
// 106.496ms, 2ms as 1.92ms, 3ms as 2.816ms.
func TestWindow(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name     string
		record   func(w *window)
		at       time.Time
		want     Latency
		wantRate float64
	}{
		{"empty", func(*window) {}, t0, Latency{}, 0},
		{"one second of calls", func(w *window) {
			for i := range 100 {
				d := time.Millisecond
				if i == 99 {
					d = 100 * time.Millisecond
				}
				w.record(t0, d, false)
			}
		}, t0, Latency{Calls: 100, P50: 960 * time.Microsecond, P99: 960 * time.Microsecond}, 0},
		{"the slowest 2% show in p99", func(w *window) {
			for i := range 100 {
				d := time.Millisecond
				if i >= 98 {
					d = 100 * time.Millisecond
				}
				w.record(t0.Add(time.Duration(i)*100*time.Millisecond), d, false)
			}
		}, t0.Add(10 * time.Second), Latency{Calls: 100, P50: 960 * time.Microsecond, P99: 106496 * time.Microsecond}, 0},
		{"failures count apart", func(w *window) {
			w.record(t0, 2*time.Millisecond, false)
			w.record(t0, 5*time.Second, true)
			w.record(t0.Add(time.Second), 0, true)
			w.record(t0.Add(time.Second), 0, true)
		}, t0.Add(time.Second), Latency{Calls: 4, Failed: 3, P50: 1920 * time.Microsecond, P99: 1920 * time.Microsecond}, 0.75},
		{"a minute later the calls are gone", func(w *window) {
			w.record(t0, time.Millisecond, false)
			w.record(t0.Add(30*time.Second), time.Millisecond, true)
		}, t0.Add(60 * time.Second), Latency{Calls: 1, Failed: 1}, 1},
		{"a slot is reused for its second", func(w *window) {
			w.record(t0, time.Millisecond, true)
			w.record(t0.Add(windowSeconds*time.Second), 3*time.Millisecond, false)
		}, t0.Add(windowSeconds * time.Second), Latency{Calls: 1, P50: 2816 * time.Microsecond, P99: 2816 * time.Microsecond}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w window
			tc.record(&w)
			got := w.summary(tc.at)
			if got != tc.want {
				t.Errorf("summary(%s) = %+v, want %+v", tc.at.Sub(t0), got, tc.want)
			}
			if r := got.ErrorRate(); r != tc.wantRate {
				t.Errorf("ErrorRate() = %v, want %v", r, tc.wantRate)
			}
		})
	}
}

// TestWindowRecordAllocatesNothing keeps the hot path free of allocations.
func TestWindowRecordAllocatesNothing(t *testing.T) {
	var w window
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() { w.record(now, 3*time.Millisecond, false) }); n != 0 {
		t.Errorf("record allocates %v times per call, want 0", n)
	}
}

// BenchmarkWindowRecord is the window's cost per shard call: alone, and
// from every core at once on one server's window (the lock contended).
func BenchmarkWindowRecord(b *testing.B) {
	var w window
	now := time.Now()
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			w.record(now, 3*time.Millisecond, false)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w.record(now, 3*time.Millisecond, false)
			}
		})
	})
}
