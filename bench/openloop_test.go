package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/logbucket"
)

func TestHistogram(t *testing.T) {
	if n := logbucket.Count(64, histSubBits); n != histBuckets {
		t.Fatalf("histBuckets = %d, want logbucket.Count(64, %d) = %d", histBuckets, histSubBits, n)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var kept []time.Duration
	for range 100_000 {
		// Log-uniform from 1 us to 10 s, as latencies spread.
		d := time.Duration(float64(time.Microsecond) * math.Pow(10, rng.Float64()*7))
		h.Record(d)
		kept = append(kept, d)
	}
	h.Record(-time.Second) // counts as 0
	kept = append(kept, 0)
	slices.Sort(kept)
	if h.Count() != len(kept) || h.Max() != kept[len(kept)-1] {
		t.Errorf("Count, Max = %d, %v, want %d, %v", h.Count(), h.Max(), len(kept), kept[len(kept)-1])
	}
	for _, p := range []float64{0, 1, 50, 90, 99, 99.9, 99.99, 100} {
		got, exact := h.Percentile(p), Percentile(kept, p)
		if got < exact || float64(got-exact) > 0.008*float64(exact) {
			t.Errorf("Percentile(%v) = %v, exact %v: more than 0.8%% off, or below it", p, got, exact)
		}
	}
	var a, b Histogram
	a.Record(time.Millisecond)
	b.Record(3 * time.Millisecond)
	b.Record(2 * time.Millisecond)
	a.Merge(&b)
	if a.Count() != 3 || a.Max() != 3*time.Millisecond || a.Percentile(50) < 2*time.Millisecond || a.Percentile(50) > 2*time.Millisecond*1008/1000 {
		t.Errorf("merged: count %d, max %v, p50 %v; want 3, 3ms, 2ms", a.Count(), a.Max(), a.Percentile(50))
	}
	var empty Histogram
	if empty.Percentile(99) != 0 {
		t.Errorf("empty Percentile(99) = %v, want 0", empty.Percentile(99))
	}
}

// TestOpenLoopSchedule checks that request i is due at start + i/rate
// exactly, that none leaves before it is due, and that all are sent.
func TestOpenLoopSchedule(t *testing.T) {
	const rate = 200.0
	var (
		mu       sync.Mutex
		intended = map[int]time.Time{}
		left     = map[int]time.Time{}
	)
	res := openLoop(context.Background(), rate, 250*time.Millisecond, 100, func(_ context.Context, i int, at time.Time) error {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		intended[i], left[i] = at, now
		return nil
	})
	if res.sent != 50 || res.dropped != 0 || res.errors != 0 || res.hist.Count() != 50 {
		t.Fatalf("sent %d, dropped %d, errors %d, answered %d; want 50, 0, 0, 50", res.sent, res.dropped, res.errors, res.hist.Count())
	}
	for i := range 50 {
		want := time.Duration(float64(i) * float64(time.Second) / rate)
		if got := intended[i].Sub(intended[0]); got != want {
			t.Errorf("request %d intended at +%v, want +%v", i, got, want)
		}
		if left[i].Before(intended[i]) {
			t.Errorf("request %d left %v before it was due", i, intended[i].Sub(left[i]))
		}
	}
}

// TestOpenLoopSlowServer runs the schedule against a server that answers
// one request at a time, each after 20 ms, at 200 requests/s: ten times
// what it serves. A closed-loop client would see 20 ms per request; from
// the intended send times, the queue shows: request i cannot be answered
// before (i+1) x 20 ms from the start, while it was due at i x 5 ms. The
// bounds below follow from that alone, whatever the machine's speed.
func TestOpenLoopSlowServer(t *testing.T) {
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		time.Sleep(20 * time.Millisecond)
		mu.Unlock()
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()

	res := openLoop(context.Background(), 200, 250*time.Millisecond, 1000, func(ctx context.Context, _ int, _ time.Time) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	})
	if res.sent != 50 || res.dropped != 0 || res.errors != 0 {
		t.Fatalf("sent %d, dropped %d, errors %d (%v); want 50, 0, 0", res.sent, res.dropped, res.errors, res.firstErr)
	}
	// The 25th answer comes at 500 ms at the earliest, due at 120 ms; the
	// 50th at 1 s, due at 245 ms.
	if p50 := res.hist.Percentile(50); p50 < 380*time.Millisecond {
		t.Errorf("p50 = %v, want at least 380 ms: latency must run from the intended send time", p50)
	}
	if res.hist.Max() < 755*time.Millisecond {
		t.Errorf("max = %v, want at least 755 ms", res.hist.Max())
	}
	if res.elapsed < time.Second {
		t.Errorf("elapsed = %v, want at least 1 s (50 answers of 20 ms, one at a time)", res.elapsed)
	}
}

// TestOpenLoopDrops checks that sends due while the in-flight limit is
// reached are dropped and counted, not queued: the first five requests
// hold the five places until well after the schedule's 50 sends are due.
func TestOpenLoopDrops(t *testing.T) {
	res := openLoop(context.Background(), 1000, 50*time.Millisecond, 5, func(context.Context, int, time.Time) error {
		time.Sleep(5 * time.Second)
		return nil
	})
	if res.sent != 5 || res.dropped != 45 || res.hist.Count() != 5 {
		t.Errorf("sent %d, dropped %d, answered %d; want 5, 45, 5", res.sent, res.dropped, res.hist.Count())
	}
}
