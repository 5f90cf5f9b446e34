package bench

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/dmshub/dmsrouter/logbucket"
)

// Histogram counts latencies in logarithmic buckets: exact below 256 ns,
// then 128 buckets per power of two, so a percentile it returns is within
// 0.8% of the sample it stands for, in a fixed 60 KB whatever the number
// of samples. An open-loop run at a high rate for minutes would keep
// millions of samples; the histogram keeps none.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
}

const (
	// histSubBits splits each power of two into 128 buckets (package
	// logbucket): exact below 256 ns, then within 1/128.
	histSubBits = 7
	histBuckets = 7424 // logbucket.Count(64, histSubBits): every uint64; an array length must be a constant
)

// Record adds one latency; a negative one counts as 0.
func (h *Histogram) Record(d time.Duration) {
	d = max(d, 0)
	h.counts[logbucket.Index(uint64(d), histSubBits)]++
	h.n++
	h.max = max(h.max, d)
}

// Merge adds o's counts to h's.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count returns the number of latencies recorded.
func (h *Histogram) Count() int { return int(h.n) }

// Max returns the largest latency recorded, exactly.
func (h *Histogram) Max() time.Duration { return h.max }

// Percentile returns the p-th percentile by the nearest-rank method, as
// Percentile does on kept samples: the upper end of the bucket holding
// the sample of that rank (never above Max). It returns 0 for no samples.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(p / 100 * float64(h.n))
	if float64(rank) < p/100*float64(h.n) {
		rank++
	}
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			return min(time.Duration(logbucket.Upper(i, histSubBits)), h.max)
		}
	}
	return h.max
}

// Open-loop limits.
const (
	// maxInFlight bounds the requests an open-loop run keeps outstanding;
	// a send due while that many are unanswered is dropped and counted.
	maxInFlight = 4096
	// lateSend is how far behind its intended time a send may leave
	// before it counts as late: the client did not keep the schedule.
	lateSend = time.Millisecond
)

// openResult is what one open-loop run measured.
type openResult struct {
	hist     Histogram // latency from each request's intended send time to its answer
	sent     int
	late     int           // sends that left more than lateSend after their intended time
	maxLag   time.Duration // the latest a send left after its intended time
	dropped  int           // sends not made: maxInFlight requests were outstanding
	errors   int
	firstErr error
	kinds    map[string]int // errors by errorKind
	elapsed  time.Duration  // from the first intended send to the last answer
}

// openLoop sends requests on a fixed schedule for d: request i is due at
// start + i/rate, whatever the answers to the earlier ones, and is sent
// from a goroutine of its own. Its latency runs from its intended send
// time, not from when it left, so a client or server that falls behind
// shows in the latencies instead of slowing the schedule down (no
// coordinated omission). A send due while inFlight requests are
// outstanding is dropped and counted. do receives the request's number
// and intended time.
func openLoop(ctx context.Context, rate float64, d time.Duration, inFlight int, do func(ctx context.Context, i int, intended time.Time) error) openResult {
	var (
		res  openResult
		mu   sync.Mutex
		wg   sync.WaitGroup
		sema = make(chan struct{}, inFlight)
	)
	start := time.Now()
	for i := 0; ctx.Err() == nil; i++ {
		offset := time.Duration(float64(i) * float64(time.Second) / rate)
		if offset >= d {
			break
		}
		intended := start.Add(offset)
		if wait := time.Until(intended); wait > 0 {
			time.Sleep(wait)
		}
		lag := time.Since(intended)
		res.maxLag = max(res.maxLag, lag)
		if lag > lateSend {
			res.late++
		}
		select {
		case sema <- struct{}{}:
		default:
			res.dropped++
			continue
		}
		res.sent++
		wg.Go(func() {
			err := do(ctx, i, intended)
			lat := time.Since(intended)
			<-sema
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if res.errors == 0 {
					res.firstErr = err
					res.kinds = map[string]int{}
				}
				res.errors++
				res.kinds[errorKind(err)]++
				return
			}
			res.hist.Record(lat)
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// OpenRun is one arm measured open-loop at a fixed rate.
type OpenRun struct {
	Arm  string
	Rate float64 // the intended requests per second
	// Elapsed is the measured time: from the first intended send to the
	// last answer, over all rounds.
	Elapsed             time.Duration
	Sent, Late, Dropped int
	Errors              int
	ErrorKinds          map[string]int // Errors by kind: "504 /problems/timeout"
	FirstError          string
	// Dials is the TCP connections the arm's HTTP client opened during the
	// run (the router arm only): a client that keeps too few idle
	// connections for the requests it has outstanding opens one per request.
	Dials                    int64
	MaxLag                   time.Duration // the latest a send left after its intended time
	Answered                 int
	P50, P90, P99, P999, Max time.Duration
	// CPU, RunQueue and ServerCPU as in ArmRun.
	CPU, RunQueue, ServerCPU time.Duration
}

// Achieved returns the answered requests per second of measured time.
func (o OpenRun) Achieved() float64 {
	if o.Elapsed <= 0 {
		return 0
	}
	return float64(o.Answered) / o.Elapsed.Seconds()
}

// perAnswer returns d per answered request.
func (o OpenRun) perAnswer(d time.Duration) time.Duration {
	if o.Answered == 0 {
		return 0
	}
	return d / time.Duration(o.Answered)
}

// measureOpen measures the arms open-loop at rate requests per second for
// d each, in rounds interleaved as measure's: each round runs every arm in
// turn for d/rounds. The requests follow the mix, drawn up front from one
// seeded stream per round, the same for every arm.
func measureOpen(ctx context.Context, arms []arm, rate float64, d time.Duration, rounds int, seed uint64, servers map[int]bool) []OpenRun {
	rounds = max(rounds, 1)
	slice := d / time.Duration(rounds)
	runs := make([]OpenRun, len(arms))
	hists := make([]Histogram, len(arms))
	for i, a := range arms {
		runs[i] = OpenRun{Arm: a.name, Rate: rate}
	}
	for round := range rounds {
		for i, a := range arms {
			mix := newMixer(a.reqs)
			rng := rand.New(rand.NewPCG(seed^0x09e7, uint64(round)))
			plan := make([]*request, int(rate*slice.Seconds())+1)
			for j := range plan {
				_, plan[j] = mix.next(rng, &a.reqs)
			}
			cpu, wait, pg, dials := cpuTime(), RunQueueTime(), serverCPU(servers), a.dialed()
			res := openLoop(ctx, rate, slice, maxInFlight, func(ctx context.Context, j int, _ time.Time) error {
				return a.do(ctx, plan[j%len(plan)])
			})
			r := &runs[i]
			r.CPU += cpuTime() - cpu
			r.RunQueue += RunQueueTime() - wait
			r.ServerCPU += serverCPU(servers) - pg
			r.Dials += a.dialed() - dials
			for k, n := range res.kinds {
				if r.ErrorKinds == nil {
					r.ErrorKinds = map[string]int{}
				}
				r.ErrorKinds[k] += n
			}
			r.Elapsed += res.elapsed
			r.Sent += res.sent
			r.Late += res.late
			r.Dropped += res.dropped
			r.Errors += res.errors
			r.MaxLag = max(r.MaxLag, res.maxLag)
			if r.FirstError == "" && res.firstErr != nil {
				r.FirstError = res.firstErr.Error()
			}
			hists[i].Merge(&res.hist)
		}
	}
	for i := range runs {
		h := &hists[i]
		r := &runs[i]
		r.Answered = h.Count()
		r.P50, r.P90, r.P99, r.P999, r.Max = h.Percentile(50), h.Percentile(90), h.Percentile(99), h.Percentile(99.9), h.Max()
	}
	return runs
}
