package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ms formats d in milliseconds with microsecond precision.
func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }

// ratio formats a/b, or "-" when b is 0.
func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// Run returns the run of arm at clients, if measured.
func (r *Report) Run(arm string, clients int) (ArmRun, bool) {
	for _, run := range r.Runs {
		if run.Arm == arm && run.Clients == clients {
			return run, true
		}
	}
	return ArmRun{}, false
}

// Target is one of the performance targets and whether the run met it.
type Target struct {
	Name  string
	Value string
	Met   bool
}

// Limits of the targets.
const (
	maxReadP99      = 10 * time.Millisecond
	maxRouterOver   = 300 * time.Microsecond
	minThroughput   = 0.5
	maxKeysetP99    = 10 * time.Millisecond
	maxRouterRSSKiB = 200 * 1024
)

// Targets evaluates the targets on the report's runs.
func (r *Report) Targets() []Target {
	var out []Target
	c := r.Concurrency
	if run, ok := r.Run(ArmRouter, c); ok {
		worst := Stats{}
		for _, s := range run.Classes[:len(run.Classes)-1] {
			if s.P99 >= worst.P99 {
				worst = s
			}
		}
		out = append(out, Target{
			Name:  fmt.Sprintf("shard-local reads through the router: p99 <= 10 ms with %d clients", c),
			Value: fmt.Sprintf("worst class %s: p99 %s ms", worst.Class, ms(worst.P99)),
			Met:   worst.P99 <= maxReadP99,
		})
	}
	rt, ok1 := r.Run(ArmRouter, 1)
	dt, ok2 := r.Run(ArmDirect, 1)
	if ok1 && ok2 {
		var worst string
		var over time.Duration = -1 << 62
		for _, s := range rt.Classes[:len(rt.Classes)-1] {
			d, ok := dt.Class(s.Class)
			if ok && s.P50-d.P50 > over {
				over, worst = s.P50-d.P50, s.Class
			}
		}
		all := rt.Total().P50 - dt.Total().P50
		out = append(out, Target{
			Name:  "router p50 - direct p50 <= 0.3 ms with 1 client",
			Value: fmt.Sprintf("worst class %s: +%s ms; whole mix: +%s ms", worst, ms(over), ms(all)),
			Met:   over <= maxRouterOver,
		})
	}
	rc, ok1 := r.Run(ArmRouter, c)
	dc, ok2 := r.Run(ArmDirect, c)
	if ok1 && ok2 && dc.Total().PerSecond > 0 {
		x := rc.Total().PerSecond / dc.Total().PerSecond
		out = append(out, Target{
			Name:  fmt.Sprintf("router throughput >= 0.5x direct with %d clients", c),
			Value: fmt.Sprintf("%.0f/s vs %.0f/s = %.2fx", rc.Total().PerSecond, dc.Total().PerSecond, x),
			Met:   x >= minThroughput,
		})
	}
	if ok1 {
		if s, ok := rc.Class(Classes()[DeepKeyset].Name); ok {
			out = append(out, Target{
				Name:  fmt.Sprintf("keyset deep page p99 <= 10 ms (router, %d clients)", c),
				Value: fmt.Sprintf("p99 %s ms", ms(s.P99)),
				Met:   s.P99 <= maxKeysetP99,
			})
		}
	}
	if r.Memory.MaxRSSKiB > 0 {
		out = append(out, Target{
			Name: "router resident memory <= 200 MB under load",
			Value: fmt.Sprintf("max VmRSS %.0f MiB, VmHWM %.0f MiB (the whole bench process: router, clients, the other arms' pools)",
				float64(r.Memory.MaxRSSKiB)/1024, float64(r.Memory.HWMKiB)/1024),
			Met: r.Memory.MaxRSSKiB <= maxRouterRSSKiB,
		})
	}
	return out
}

// WriteMarkdown writes the report as a markdown section: the setup, a
// latency table per concurrency, the ratios, ingest, memory and the targets.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	sc := r.Scale
	p("\n## %s: %s markets, %s presences\n\n", r.Date.Format("2006-01-02 15:04 MST"), group(sc["markets"]), group(sc["vendor_presences"]))
	p("- Command: `%s`\n", r.Command)
	m := r.Machine
	p("- Machine: %d CPUs (%s), %.1f GiB memory; %s, GOMAXPROCS %d; PostgreSQL %s on the same machine. "+
		"Load average %s before, %s after; the CPUs were %.0f%% busy during the run, %.0f%% with this process "+
		"(the rest: PostgreSQL, serving this run and others, and the other users of this shared machine).\n",
		m.CPUs, m.CPUModel, float64(m.MemoryKiB)/(1<<20), m.GoVersion, m.GOMAXPROCS, m.Postgres, m.LoadBefore, m.LoadAfter,
		100*m.Busy, 100*m.Own)
	p("- Each arm: %s warm-up, then %s measured in %d rounds interleaved with the other arms, with %d clients and with 1 client; "+
		"exact percentiles of every request's latency.\n", r.Warmup, r.Duration, r.Rounds, r.Concurrency)
	p("\nRows per table:\n\n| table | %d shards | monolith |\n|---|---:|---:|\n", r.Shards)
	for _, t := range scaleTables {
		mono := "-"
		if r.MonolithScale != nil {
			mono = group(r.MonolithScale[t])
		}
		p("| %s | %s | %s |\n", t, group(sc[t]), mono)
	}
	pr := r.Params
	p("\nParameters (evenly spaced samples of the seeded data): %d markets (and their comuni), %d markets with presences on %s, "+
		"%d vendors with concessions; deep page: region %s (%d markets) at offset %d, and the same page by keyset cursor.",
		len(pr.Markets), len(pr.Present), pr.Day.Format(time.DateOnly), len(pr.Vendors), pr.Deep, pr.DeepTotal, pr.Offset)
	if r.MonolithScale != nil {
		if r.SameParams {
			p(" The monolith was asked exactly the same requests.")
		} else {
			p(" The monolith's data differs: it was asked its own sample of the same classes.")
		}
	}
	p("\n")
	for _, n := range r.Notes {
		p("- Note: %s\n", n)
	}

	levels := []int{r.Concurrency}
	if r.Concurrency != 1 {
		levels = append(levels, 1)
	}
	for _, c := range levels {
		p("\n### %d client%s\n\n", c, map[bool]string{true: "s"}[c != 1])
		p("| class | arm | requests | p50 ms | p95 ms | p99 ms | max ms | req/s | errors |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, k := range append(Classes(), Class{Name: "all"}) {
			for _, arm := range []string{ArmDirect, ArmRouter, ArmMonolith} {
				run, ok := r.Run(arm, c)
				if !ok {
					continue
				}
				s, ok := run.Class(k.Name)
				if !ok {
					continue
				}
				p("| %s | %s | %d | %s | %s | %s | %s | %.0f | %d |\n", s.Class, arm, s.Requests, ms(s.P50), ms(s.P95), ms(s.P99), ms(s.Max), s.PerSecond, s.Errors)
			}
		}
		p("\nRatios (router/direct, router/monolith; above 1 the router is slower):\n\n")
		p("| class | p50 r/d | p99 r/d | req/s r/d | p50 r/m | p99 r/m | req/s r/m |\n|---|---:|---:|---:|---:|---:|---:|\n")
		rr, _ := r.Run(ArmRouter, c)
		dr, _ := r.Run(ArmDirect, c)
		mr, hasMono := r.Run(ArmMonolith, c)
		for _, s := range rr.Classes {
			d, _ := dr.Class(s.Class)
			mo := Stats{}
			if hasMono {
				mo, _ = mr.Class(s.Class)
			}
			p("| %s | %s | %s | %s | %s | %s | %s |\n", s.Class,
				ratio(float64(s.P50), float64(d.P50)), ratio(float64(s.P99), float64(d.P99)), ratio(s.PerSecond, d.PerSecond),
				ratio(float64(s.P50), float64(mo.P50)), ratio(float64(s.P99), float64(mo.P99)), ratio(s.PerSecond, mo.PerSecond))
		}
		p("\nCPU time per request: of the benchmark process (the clients, and the router in the router arm) and of " +
			"PostgreSQL (its backends on this machine); and how long the process's threads waited for a CPU per request:\n\n")
		p("| arm | bench process CPU ms | PostgreSQL CPU ms | run-queue wait ms |\n|---|---:|---:|---:|\n")
		for _, arm := range []string{ArmDirect, ArmRouter, ArmMonolith} {
			if run, ok := r.Run(arm, c); ok {
				p("| %s | %s | %s | %s |\n", arm, ms(run.CPUPerRequest()), ms(run.ServerCPUPerRequest()), ms(run.RunQueuePerRequest()))
			}
		}
		for _, arm := range []string{ArmDirect, ArmRouter, ArmMonolith} {
			if run, ok := r.Run(arm, c); ok {
				if s := run.Total(); s.FirstError != "" {
					p("\nFirst error of %s: `%s`\n", arm, s.FirstError)
				}
			}
		}
	}

	if c := r.Warm.Cold; c.Repeats > 0 {
		p("\n### Cold connections\n\n")
		p("The first presence read on a new connection of shard %s (%d region(s)), `%s`, %d fresh connections each way "+
			"(median / max ms; the connection open before the read in every case):\n\n", c.ShardName, c.ShardRegions, c.Path, c.Repeats)
		p("| read | median ms | max ms |\n|---|---:|---:|\n")
		for _, row := range []struct {
			name string
			d    []time.Duration
		}{
			{"first read, no warm-up (prepares and builds the generic plans)", c.Cold},
			{"second read on that connection", c.Second},
			{"registry.Warm on a new connection (before it serves)", c.WarmUp},
			{"first read after the warm-up", c.Warm},
		} {
			p("| %s | %s | %s |\n", row.name, ms(Percentile(row.d, 50)), ms(Percentile(row.d, 100)))
		}
	}
	if w := r.Warm.Pools; w.Conns > 0 {
		p("\nBefore measuring, the direct and monolith arms' pools were filled and warmed: %d connections in %.2f s, "+
			"%.2f s in registry.Warm (%s ms a connection), %.2f s of PostgreSQL CPU. The router warms its own: it starts "+
			"with database.warm_conns = %d and answered /readyz 200 (its pools filled and warmed) %.2f s after it listened; "+
			"the bench waited for that before measuring, and connections the router opens later warm before they serve.\n",
			w.Conns, w.Wall.Seconds(), w.Warm.Seconds(), ms(w.Warm/time.Duration(w.Conns)), w.ServerCPU.Seconds(), r.Concurrency,
			r.Warm.RouterReady.Seconds())
	}
	if len(r.Open) > 0 {
		o := r.Open[0]
		p("\n### Open loop, %.0f requests/s\n\n", o.Rate)
		p("Each arm sent the mix on a fixed schedule, %.0f requests/s for %s in %d rounds interleaved with the other arms, whatever "+
			"the answers; latency runs from each request's intended send time (no coordinated omission), percentiles from a "+
			"log-bucket histogram (within 0.8%%), of the requests answered without error. Late: sends that left more than %s behind the schedule (the client's own lag); "+
			"dropped: sends not made while %d requests were outstanding; connections: TCP connections the router arm's client opened "+
			"during the run.\n\n", o.Rate, r.Duration, r.Rounds, lateSend, maxInFlight)
		p("| arm | sent | answered/s | late | max send lag ms | dropped | errors | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | bench CPU ms | PostgreSQL CPU ms | connections |\n")
		p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, o := range r.Open {
			conns := "-"
			if o.Arm == ArmRouter {
				conns = strconv.FormatInt(o.Dials, 10)
			}
			p("| %s | %d | %.0f | %d | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", o.Arm, o.Sent, o.Achieved(), o.Late, ms(o.MaxLag),
				o.Dropped, o.Errors, ms(o.P50), ms(o.P90), ms(o.P99), ms(o.P999), ms(o.Max), ms(o.perAnswer(o.CPU)), ms(o.perAnswer(o.ServerCPU)), conns)
		}
		for _, o := range r.Open {
			if o.FirstError == "" {
				continue
			}
			kinds := slices.Sorted(maps.Keys(o.ErrorKinds))
			for i, k := range kinds {
				kinds[i] = fmt.Sprintf("%d %s", o.ErrorKinds[k], k)
			}
			p("\nErrors of %s (open loop): %s; the first: `%s`\n", o.Arm, strings.Join(kinds, ", "), o.FirstError)
		}
	}

	if len(r.Ingest) > 0 {
		p("\n### Ingest\n\n| into | method | rows | seconds | rows/s |\n|---|---|---:|---:|---:|\n")
		for _, in := range r.Ingest {
			p("| %s | %s | %s | %.2f | %s |\n", in.Target, in.Method, group(in.Rows), in.Elapsed.Seconds(), group(int64(in.PerSecond())))
		}
	}
	if targets := r.Targets(); len(targets) > 0 {
		p("\n### Targets\n\n| target | measured | met |\n|---|---|---|\n")
		for _, t := range targets {
			p("| %s | %s | %s |\n", t.Name, t.Value, map[bool]string{true: "yes", false: "**no**"}[t.Met])
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// group formats n with thousands separators.
func group(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + group(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
