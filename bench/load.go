package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dmshub/dmsrouter/shardmap"
)

// arm is one way of asking the requests: straight to the shards, through
// the router, or to the monolith.
type arm struct {
	name   string
	reqs   [numClasses][]request
	shards *shardmap.Map // nil for the router
	do     func(ctx context.Context, r *request) error
	// dials counts the TCP connections the arm's HTTP client opened; nil
	// for the arms that use a pgx pool.
	dials *atomic.Int64
}

// shardArm asks the requests of the registry functions on the shards of m:
// the SQL and the single round trip the router runs, without HTTP.
func shardArm(name string, m *shardmap.Map, reqs [numClasses][]request) arm {
	return arm{name: name, reqs: reqs, shards: m, do: func(ctx context.Context, r *request) error {
		_, _, err := r.run(ctx, m)
		return err
	}}
}

// httpArm asks the requests of the router at base (http://host:port) with
// a bearer token per territory; dials counts the connections client opens.
// An answer other than 200 is a *statusError.
func httpArm(name, base string, client *http.Client, dials *atomic.Int64, tokens map[string]string, reqs [numClasses][]request) arm {
	return arm{name: name, reqs: reqs, dials: dials, do: func(ctx context.Context, r *request) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+r.path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tokens[r.territory.String()])
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return newStatusError("GET "+r.path, resp)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}}
}

// dialed returns the connections the arm's HTTP client opened so far, 0
// for an arm without one.
func (a *arm) dialed() int64 {
	if a.dials == nil {
		return 0
	}
	return a.dials.Load()
}

// statusError is an answer other than 200: its status and problem type.
type statusError struct {
	request string // "GET /v1/..."
	status  string // "504 Gateway Timeout"
	code    int
	problem string // the problem+json type, "" when the body has none
}

// newStatusError reads the problem type from resp's body (at most 4 KB).
func newStatusError(request string, resp *http.Response) *statusError {
	var p struct {
		Type string `json:"type"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&p)
	return &statusError{request: request, status: resp.Status, code: resp.StatusCode, problem: p.Type}
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s: %s %s", e.request, e.status, e.problem)
}

// errorKind names the kind of a failed request for counting: the status
// and problem type of an HTTP answer ("504 /problems/timeout"), the
// shardmap error of a direct one ("timeout", "unavailable", "overloaded"),
// or "other".
func errorKind(err error) string {
	var (
		se          *statusError
		timeout     *shardmap.TimeoutError
		unavailable *shardmap.UnavailableError
	)
	switch {
	case errors.As(err, &se):
		return strings.TrimSpace(fmt.Sprintf("%d %s", se.code, se.problem))
	case errors.As(err, &timeout):
		return "timeout"
	case errors.As(err, &unavailable):
		return "unavailable"
	case errors.Is(err, shardmap.ErrOverloaded):
		return "overloaded"
	}
	return "other"
}

// Stats are the latencies of one class (or of all) in one measured run.
type Stats struct {
	Class      string
	Requests   int
	Errors     int
	FirstError string
	P50        time.Duration
	P95        time.Duration
	P99        time.Duration
	Max        time.Duration
	PerSecond  float64
}

// ArmRun is one arm measured at one concurrency.
type ArmRun struct {
	Arm     string
	Clients int
	Elapsed time.Duration
	// CPU is the CPU time (user and system) the benchmark process spent in
	// the measured run: the clients, and the router for the router arm. On a
	// shared machine it says more about cost than latency does.
	CPU time.Duration
	// RunQueue is how long the process's threads waited for a CPU, runnable
	// but not running, during the measured run: what a loaded machine adds
	// to every wake-up of a client, the router or the pool.
	RunQueue time.Duration
	// ServerCPU is the CPU time the local PostgreSQL servers used during
	// the measured run (0 when they could not be found).
	ServerCPU time.Duration
	Classes   []Stats // by class, then the whole mix last
}

// ServerCPUPerRequest returns PostgreSQL's CPU time per request of the run.
func (a ArmRun) ServerCPUPerRequest() time.Duration {
	if n := a.Total().Requests; n > 0 {
		return a.ServerCPU / time.Duration(n)
	}
	return 0
}

// RunQueuePerRequest returns the run-queue wait per request of the run.
func (a ArmRun) RunQueuePerRequest() time.Duration {
	if n := a.Total().Requests; n > 0 {
		return a.RunQueue / time.Duration(n)
	}
	return 0
}

// CPUPerRequest returns the process's CPU time per request of the run.
func (a ArmRun) CPUPerRequest() time.Duration {
	if n := a.Total().Requests; n > 0 {
		return a.CPU / time.Duration(n)
	}
	return 0
}

// Total returns the stats of the whole mix.
func (a ArmRun) Total() Stats { return a.Classes[len(a.Classes)-1] }

// Class returns the stats of the class named name.
func (a ArmRun) Class(name string) (Stats, bool) {
	for _, s := range a.Classes {
		if s.Class == name {
			return s, true
		}
	}
	return Stats{}, false
}

// classSamples collects one client's outcomes for one class.
type classSamples struct {
	lat      []time.Duration
	errors   int
	firstErr error
}

// mixer draws the mix's next request: a class by weight (classes without
// requests are left out), then one of its requests uniformly. Each client
// has its own deterministic stream, the same for every arm.
type mixer struct {
	cum [numClasses]int // cumulative weights
}

func newMixer(reqs [numClasses][]request) mixer {
	var m mixer
	sum := 0
	for k, c := range Classes() {
		if len(reqs[k]) > 0 {
			sum += c.Weight
		}
		m.cum[k] = sum
	}
	return m
}

func (m mixer) next(rng *rand.Rand, reqs *[numClasses][]request) (int, *request) {
	w := rng.IntN(m.cum[numClasses-1])
	k := 0
	for w >= m.cum[k] {
		k++
	}
	return k, &reqs[k][rng.IntN(len(reqs[k]))]
}

// drive runs a's requests from clients concurrent clients for d and
// returns the samples, or only warms up when record is false. Clients start
// no request after d; the run's elapsed time ends when the last one returns.
func drive(ctx context.Context, a arm, clients int, d time.Duration, seed uint64, record bool) ([numClasses]classSamples, time.Duration) {
	mix := newMixer(a.reqs)
	per := make([][numClasses]classSamples, clients)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(c)))
			mine := &per[c]
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				k, r := mix.next(rng, &a.reqs)
				err := a.do(ctx, r)
				el := time.Since(t0)
				if !record {
					continue
				}
				s := &mine[k]
				if err != nil {
					if s.errors == 0 {
						s.firstErr = err
					}
					s.errors++
					continue
				}
				s.lat = append(s.lat, el)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all [numClasses]classSamples
	for _, p := range per {
		for k := range all {
			all[k].lat = append(all[k].lat, p[k].lat...)
			if all[k].errors == 0 && p[k].firstErr != nil {
				all[k].firstErr = p[k].firstErr
			}
			all[k].errors += p[k].errors
		}
	}
	return all, elapsed
}

// measure warms every arm up, then measures the arms in rounds: each round
// drives every arm in turn for d/rounds, so that a machine whose load
// changes over time weighs on all arms alike. Samples, elapsed time and CPU
// time add up over the rounds. It returns one run per arm, in arms' order.
func measure(ctx context.Context, arms []arm, clients int, warmup, d time.Duration, rounds int, seed uint64, servers map[int]bool) []ArmRun {
	rounds = max(rounds, 1)
	samples := make([][numClasses]classSamples, len(arms))
	runs := make([]ArmRun, len(arms))
	for i, a := range arms {
		runs[i] = ArmRun{Arm: a.name, Clients: clients}
		if warmup > 0 {
			drive(ctx, a, clients, warmup, seed^0x5eed, false)
		}
	}
	for round := range rounds {
		for i, a := range arms {
			cpu, wait, pg := cpuTime(), RunQueueTime(), serverCPU(servers)
			s, elapsed := drive(ctx, a, clients, d/time.Duration(rounds), seed+uint64(round), true)
			runs[i].CPU += cpuTime() - cpu
			runs[i].RunQueue += RunQueueTime() - wait
			runs[i].ServerCPU += serverCPU(servers) - pg
			runs[i].Elapsed += elapsed
			for k := range s {
				all := &samples[i][k]
				all.lat = append(all.lat, s[k].lat...)
				if all.firstErr == nil {
					all.firstErr = s[k].firstErr
				}
				all.errors += s[k].errors
			}
		}
	}
	for i, a := range arms {
		var total classSamples
		for k, c := range Classes() {
			if len(a.reqs[k]) == 0 {
				continue
			}
			s := samples[i][k]
			runs[i].Classes = append(runs[i].Classes, summarize(c.Name, s, runs[i].Elapsed))
			total.lat = append(total.lat, s.lat...)
			total.errors += s.errors
			if total.firstErr == nil {
				total.firstErr = s.firstErr
			}
		}
		runs[i].Classes = append(runs[i].Classes, summarize("all", total, runs[i].Elapsed))
	}
	return runs
}

// summarize computes exact percentiles of the kept samples.
func summarize(name string, s classSamples, elapsed time.Duration) Stats {
	slices.Sort(s.lat)
	st := Stats{
		Class:    name,
		Requests: len(s.lat),
		Errors:   s.errors,
		P50:      Percentile(s.lat, 50),
		P95:      Percentile(s.lat, 95),
		P99:      Percentile(s.lat, 99),
	}
	if n := len(s.lat); n > 0 {
		st.Max = s.lat[n-1]
	}
	if elapsed > 0 {
		st.PerSecond = float64(len(s.lat)) / elapsed.Seconds()
	}
	if s.firstErr != nil {
		st.FirstError = s.firstErr.Error()
	}
	return st
}

// Percentile returns the p-th percentile of sorted by the nearest-rank
// method: the smallest sample that at least p percent of the samples do
// not exceed. It returns 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(p / 100 * float64(n))
	if float64(rank) < p/100*float64(n) {
		rank++ // ceil
	}
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}
