// Package bench measures the router side by side with the SQL it runs: a
// fixed mix of read requests asked of the shards directly (the floor), of
// the router's HTTP API, and of one monolithic database holding all 20
// regions, plus bulk ingest as batched INSERTs against COPY. Closed-loop
// latencies are kept, so their percentiles are exact; open-loop runs (a
// fixed rate, latency from the intended send time) count theirs in a
// bounded histogram. It also times the first read on a new connection with
// and without registry.Warm.
//
// It is a dev tool (cmd/dmsdev bench and ingest): it may import auth (to
// sign its clients' tokens), config, registry, shardmap and regions, and
// nothing shipped imports it.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Options configures a benchmark run.
type Options struct {
	// Config is the sharded deployment; the router serves it.
	Config config.Config
	// Monolith, when not nil, is the same data in one database (a config
	// whose 20 regions map to one shard); without it the monolith arm is skipped.
	Monolith *shardmap.Config
	// Duration is how long each arm is measured at each concurrency, after
	// Warmup, in Rounds slices interleaved with the other arms'.
	Duration, Warmup time.Duration
	Rounds           int
	// Concurrency is the number of clients of the loaded runs; every arm is
	// also measured with one client.
	Concurrency int
	// Rate, when positive, adds open-loop runs: every arm is sent Rate
	// requests per second on a fixed schedule for Duration (see openLoop).
	Rate float64
	// IngestRows presences are written as IngestBatch-row INSERTs and with
	// COPY; 0 skips ingest.
	IngestRows, IngestBatch int
	// Seed seeds the clients' request streams.
	Seed uint64
	// Command is the command line, for the report.
	Command string
	// Serve runs the router for cfg until ctx is done, calling ready with
	// its address once it listens.
	Serve func(ctx context.Context, cfg config.Config, ready func(net.Addr)) error
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// CPUProfile, when not nil, receives a CPU profile of the process while
	// the arms run at Concurrency.
	CPUProfile io.Writer
}

// Report is the outcome of a run.
type Report struct {
	Date          time.Time
	Command       string
	Machine       Machine
	Shards        int
	Scale         map[string]int64 // rows per table, the sharded deployment
	MonolithScale map[string]int64 // rows per table, the monolith
	Params        Params
	SameParams    bool     // the monolith was asked exactly the sharded deployment's requests
	Notes         []string // what the preflight found
	Duration      time.Duration
	Warmup        time.Duration
	Rounds        int
	Concurrency   int
	Runs          []ArmRun
	Open          []OpenRun // the open-loop runs, when Options.Rate is set
	Warm          Warming
	Ingest        []Ingest
	Memory        Memory
}

// Arm names.
const (
	ArmDirect   = "direct"
	ArmRouter   = "router"
	ArmMonolith = "monolith"
)

// Run runs the benchmark and returns its report. It needs seeded
// deployments: Options.Config, and Options.Monolith when given.
func Run(ctx context.Context, opts Options) (*Report, error) {
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "bench: "+format+"\n", args...)
		}
	}
	if opts.Concurrency < 1 || opts.Duration <= 0 {
		return nil, errors.New("bench: concurrency must be at least 1 and duration positive")
	}
	if opts.Config.Auth.HS256Secret == "" {
		return nil, errors.New("bench: the router arm signs its tokens with auth.hs256_secret, which the config does not set")
	}
	if opts.IngestRows > 0 && opts.IngestBatch < 1 {
		return nil, errors.New("bench: ingest batch must be at least 1")
	}
	rep := &Report{
		Date: time.Now().UTC(), Command: opts.Command, Machine: machine(), Shards: len(opts.Config.ShardMap.Shards),
		Duration: opts.Duration, Warmup: opts.Warmup, Rounds: max(opts.Rounds, 1), Concurrency: opts.Concurrency,
	}
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		return nil, err
	}
	start, startCPU, startStat := time.Now(), cpuTime(), readCPUStat()
	y, mo, d := time.Now().In(rome).Date()
	today := time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)

	// The direct and monolith arms' pools warm their connections as the
	// router's do (registry.Warm), timed.
	var warm warmTimer
	direct, err := shardmap.Open(opts.Config.ShardMap, shardmap.Options{Warm: warm.warm})
	if err != nil {
		return nil, err
	}
	defer direct.Close()
	var mono *shardmap.Map
	if opts.Monolith != nil {
		if mono, err = shardmap.Open(*opts.Monolith, shardmap.Options{Warm: warm.warm}); err != nil {
			return nil, err
		}
		defer mono.Close()
	}

	// The pools are warmed before the first read through them: a read on a
	// cold pool opens and warms its connection within the acquire timeout
	// (1 s in the dev configuration), which a loaded machine can exceed.
	servers := localServers(ctx, opts.Config.ShardMap, opts.Monolith)
	logf("warming %d connections of every pool", opts.Concurrency)
	if rep.Warm.Pools, err = warmPools(ctx, []*shardmap.Map{direct, mono}, opts.Concurrency, &warm, servers); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}

	logf("counting rows")
	if rep.Scale, err = Scale(ctx, opts.Config.ShardMap); err != nil {
		return nil, err
	}
	if opts.Monolith != nil {
		if rep.MonolithScale, err = Scale(ctx, *opts.Monolith); err != nil {
			return nil, err
		}
	}
	if err := direct.Shards()[0].Read(ctx, regions.Scope{}, func(b *pgx.Batch) {
		b.Queue(`SELECT current_setting('server_version')`).QueryRow(func(r pgx.Row) error { return r.Scan(&rep.Machine.Postgres) })
	}); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}

	logf("sampling request parameters")
	if rep.Params, err = sample(ctx, direct, today); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	reqs := rep.Params.requests()
	var monoReqs [numClasses][]request
	if mono != nil {
		mp, err := sample(ctx, mono, today)
		if err != nil {
			return nil, fmt.Errorf("bench: monolith: %w", err)
		}
		monoReqs = mp.requests()
		rep.SameParams = sameRequests(reqs, monoReqs)
		if !rep.SameParams {
			rep.Notes = append(rep.Notes, "the monolith's data differs from the sharded deployment's: it was asked its own sample of the same classes")
		}
	}

	if len(reqs[PresencesToday]) > 0 {
		logf("cold connections: the first presence read on a new connection, with and without its warm-up")
		if rep.Warm.Cold, err = coldReads(ctx, opts.Config.ShardMap, &reqs[PresencesToday][0], coldRepeats); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	tokens, err := signTokens(opts.Config.Auth.HS256Secret, reqs)
	if err != nil {
		return nil, err
	}
	srvCtx, stopRouter := context.WithCancel(ctx)
	defer stopRouter()
	// The router fills and warms its own pools as it starts, in the
	// background (database.warm_conns), as far as the clients can use them.
	routerCfg := opts.Config
	routerCfg.ShardMap.Database.WarmConns = int32(min(opts.Concurrency, 1000))
	base, served, err := startRouter(srvCtx, opts.Serve, routerCfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		stopRouter()
		<-served
	}()
	logf("waiting for the router to warm %d connections of every pool (/readyz)", routerCfg.ShardMap.Database.WarmConns)
	if rep.Warm.RouterReady, err = waitReady(ctx, base, routerReadyWithin); err != nil {
		return nil, err
	}
	// The client keeps a connection idle for every request it may have
	// outstanding: an open-loop run up to maxInFlight. With fewer, every
	// request beyond them opens a TCP connection and closes it after its
	// answer, which costs this process and the router CPU exactly when
	// the router is behind (BENCHMARKS.md, "The open loop's 504s").
	idle := opts.Concurrency + 1
	if opts.Rate > 0 {
		idle = max(idle, maxInFlight)
	}
	var dials atomic.Int64
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: 0, MaxIdleConnsPerHost: idle, IdleConnTimeout: 90 * time.Second, DisableCompression: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
	}}
	defer client.CloseIdleConnections()

	arms := []arm{shardArm(ArmDirect, direct, reqs), httpArm(ArmRouter, base, client, &dials, tokens, reqs)}
	if mono != nil {
		arms = append(arms, shardArm(ArmMonolith, mono, monoReqs))
	}
	// The router's pools are warm (waitReady), so a failing preflight is
	// a failure, not a warm-up still under way.
	notes, err := preflight(ctx, arms, client, base, tokens)
	if err != nil {
		return nil, err
	}
	rep.Notes = append(rep.Notes, notes...)

	if err := rep.measureReads(ctx, opts, arms, servers, logf); err != nil {
		return nil, err
	}
	if opts.Rate > 0 {
		logf("open loop: %.0f requests/s per arm, %s per arm in %d rounds", opts.Rate, opts.Duration, max(opts.Rounds, 1))
		rep.Open = measureOpen(ctx, arms, opts.Rate, opts.Duration, opts.Rounds, opts.Seed, servers)
		for _, o := range rep.Open {
			logf("%s, open loop at %.0f/s: %d sent, %.0f/s answered, %d late, %d dropped, %d errors %v, %d connections opened, p50 %s ms, p99 %s ms, p99.9 %s ms, max %s ms",
				o.Arm, o.Rate, o.Sent, o.Achieved(), o.Late, o.Dropped, o.Errors, o.ErrorKinds, o.Dials, ms(o.P50), ms(o.P99), ms(o.P999), ms(o.Max))
		}
	}
	stopRouter()
	<-served

	if opts.IngestRows > 0 && rep.Params.DeepTotal > 0 {
		rep.ingest(ctx, opts, direct, mono, today, rome, logf)
	}
	rep.Machine.LoadAfter = loadavg()
	if st := readCPUStat(); st.total > startStat.total {
		rep.Machine.Busy = float64(st.busy-startStat.busy) / float64(st.total-startStat.total)
	}
	rep.Machine.Own = float64(cpuTime()-startCPU) / float64(time.Since(start)*time.Duration(rep.Machine.CPUs))
	return rep, nil
}

// measureReads measures the arms with opts.Concurrency clients, then with
// one, and adds the runs and the memory seen to the report.
func (rep *Report) measureReads(ctx context.Context, opts Options, arms []arm, servers map[int]bool, logf func(string, ...any)) error {
	levels := []int{opts.Concurrency}
	if opts.Concurrency != 1 {
		levels = append(levels, 1)
	}
	for _, clients := range levels {
		if err := ctx.Err(); err != nil {
			return err
		}
		logf("%d clients: %s warm-up per arm, then %s per arm in %d rounds of %s, %s, ...",
			clients, opts.Warmup, opts.Duration, max(opts.Rounds, 1), opts.Duration/time.Duration(max(opts.Rounds, 1)), arms[0].name)
		rss := sampleRSS(100 * time.Millisecond)
		profile := opts.CPUProfile != nil && clients == opts.Concurrency
		if profile {
			if err := pprof.StartCPUProfile(opts.CPUProfile); err != nil {
				return err
			}
		}
		runs := measure(ctx, arms, clients, opts.Warmup, opts.Duration, opts.Rounds, opts.Seed, servers)
		if profile {
			pprof.StopCPUProfile()
		}
		rep.Memory.MaxRSSKiB = max(rep.Memory.MaxRSSKiB, rss.Stop())
		rep.Memory.HWMKiB = memKiB("VmHWM")
		for _, run := range runs {
			t := run.Total()
			logf("%s, %d clients: %d requests, %.0f/s, p50 %s ms, p99 %s ms, %d errors; a request: %s ms CPU here, %s ms in PostgreSQL, %s ms run-queue wait",
				run.Arm, clients, t.Requests, t.PerSecond, ms(t.P50), ms(t.P99), t.Errors,
				ms(run.CPUPerRequest()), ms(run.ServerCPUPerRequest()), ms(run.RunQueuePerRequest()))
		}
		rep.Runs = append(rep.Runs, runs...)
	}
	return nil
}

// ingest measures both write paths into the deep region's shard, and into
// the monolith when there is one. A failed ingest is noted in the report:
// the read runs are worth keeping.
func (rep *Report) ingest(ctx context.Context, opts Options, direct, mono *shardmap.Map, today time.Time, rome *time.Location, logf func(string, ...any)) {
	// Far from the seeded days (which end today) and inside the
	// partitions the schema makes ahead of time.
	first := today.AddDate(0, 0, 30)
	r := rep.Params.Deep
	sh, _ := direct.For(r)
	logf("ingest: %d presences of region %s into shard %s", opts.IngestRows, r, sh.Name())
	res, err := ingestInto(ctx, direct, "shard "+sh.Name()+" (region "+string(r)+")", r, opts.IngestRows, opts.IngestBatch, first, rome)
	rep.Ingest = append(rep.Ingest, res...)
	if err != nil {
		rep.Notes = append(rep.Notes, err.Error())
	}
	if mono != nil {
		logf("ingest: %d presences of region %s into the monolith", opts.IngestRows, r)
		res, err := ingestInto(ctx, mono, "monolith (region "+string(r)+")", r, opts.IngestRows, opts.IngestBatch, first, rome)
		rep.Ingest = append(rep.Ingest, res...)
		if err != nil {
			rep.Notes = append(rep.Notes, "monolith: "+err.Error())
		}
	}
}

// localServers returns the postmaster PIDs of the servers of cfg and mono
// that run on this machine, to account PostgreSQL's CPU time.
func localServers(ctx context.Context, cfg shardmap.Config, mono *shardmap.Config) map[int]bool {
	servers := map[int]bool{}
	for _, c := range []*shardmap.Config{&cfg, mono} {
		if c == nil {
			continue
		}
		for _, s := range c.Shards {
			if pid := postmaster(ctx, s.AdminDSN()); pid != 0 {
				servers[pid] = true
			}
		}
	}
	return servers
}

// startRouter runs serve for cfg on a free loopback port and returns its
// base URL and a channel closed when serve has returned.
func startRouter(ctx context.Context, serve func(context.Context, config.Config, func(net.Addr)) error, cfg config.Config) (string, <-chan struct{}, error) {
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Server.MetricsAddr = "" // not scraped; and the port may be taken
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		errc <- serve(ctx, cfg, func(a net.Addr) { addrc <- a })
	}()
	select {
	case a := <-addrc:
		return "http://" + a.String(), done, nil
	case err := <-errc:
		return "", done, fmt.Errorf("bench: start router: %w", err)
	}
}

// routerReadyWithin bounds the wait for the router's warm-up: 20 pools
// of 16 connections at 35-42 ms of PostgreSQL CPU each take about 13 s of
// CPU at full scale.
const routerReadyWithin = 5 * time.Minute

// waitReady polls base's /readyz until it answers 200 and returns how long
// that took: the router answers 503 {"status":"warming"} while it fills
// and warms its pools, and a measurement started before would time the
// warm-up, not the router.
func waitReady(ctx context.Context, base string, within time.Duration) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	last := "no answer"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if err != nil {
			return 0, err
		}
		res, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
			last = fmt.Sprintf("%d %s", res.StatusCode, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("bench: the router was not ready within %s (/readyz: %s)", within, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// signTokens signs one token per territory the requests are asked in.
func signTokens(secret string, reqs [numClasses][]request) (map[string]string, error) {
	tokens := map[string]string{}
	for _, list := range reqs {
		for _, r := range list {
			t := r.territory.String()
			if _, ok := tokens[t]; ok {
				continue
			}
			p := auth.Principal{Subject: subject, Role: "admin_pa", Territory: r.territory}
			tok, err := auth.SignHS256(secret, p, 12*time.Hour, time.Now())
			if err != nil {
				return nil, err
			}
			tokens[t] = tok
		}
	}
	return tokens, nil
}

// preflight asks the first request of every class of every arm once and
// checks that the router answers 200 with the total the shard gives, and
// that the monolith gives the same. It returns notes on classes whose
// request found no rows; a request that fails is an error.
func preflight(ctx context.Context, arms []arm, client *http.Client, base string, tokens map[string]string) ([]string, error) {
	var notes []string
	classes := Classes()
	for k := range numClasses {
		if len(arms[0].reqs[k]) == 0 {
			notes = append(notes, fmt.Sprintf("%s: no parameters in the data, class left out of the mix", classes[k].Name))
			continue
		}
		totals := map[string]int64{}
		for _, a := range arms {
			r := &a.reqs[k][0]
			var total int64
			var items int
			var err error
			if a.name == ArmRouter {
				total, items, err = getList(ctx, client, base+r.path, tokens[r.territory.String()])
			} else {
				total, items, err = r.run(ctx, a.shards)
			}
			if err != nil {
				return nil, fmt.Errorf("bench: preflight %s on %s: %s: %w", classes[k].Name, a.name, r.path, err)
			}
			if items == 0 {
				notes = append(notes, fmt.Sprintf("%s on %s: %s returned no rows", classes[k].Name, a.name, r.path))
			}
			totals[a.name] = total
		}
		if totals[ArmRouter] != totals[ArmDirect] {
			return nil, fmt.Errorf("bench: preflight %s: router total %d, direct total %d", classes[k].Name, totals[ArmRouter], totals[ArmDirect])
		}
		if t, ok := totals[ArmMonolith]; ok && t != totals[ArmDirect] {
			notes = append(notes, fmt.Sprintf("%s: monolith total %d, sharded total %d", classes[k].Name, t, totals[ArmDirect]))
		}
	}
	return notes, nil
}

// getList GETs a list of the API and returns its total and item count.
func getList(ctx context.Context, client *http.Client, url, token string) (int64, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("%s: %s", resp.Status, body)
	}
	var l struct {
		Total int64             `json:"total"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(body, &l); err != nil {
		return 0, 0, err
	}
	return l.Total, len(l.Items), nil
}
