package router

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// replicaApp is the application_name of the benchmark's connections to
// replicas, by which it tells which server answered a read.
const replicaApp = "benchreplica"

// BenchmarkReplicas measures what a streaming replica behind each shard
// costs the market-of-a-region read (8 clients): a router over shards
// without replicas, a router over the same shards each with a replica
// that gets the reads, and that router asked reads carrying a write's
// DMS-Consistency header (the replica has replayed it, so they still go
// there, after comparing the position). The shards are databases of one
// server of the benchmark's own and the replicas are databases of one
// streaming replica of it (pg_basebackup -R), so the arms differ only in
// where reads go. Each setup is also read directly through the shard map
// (registry.GetMarket, the handler's SQL in one batch, no HTTP) for the
// router's overhead over that floor. The arms run interleaved in rounds
// (see benchTiming); the table gives throughput, p50 and p99 and the
// routers' ratios to the router without replicas. Run it with
// -benchtime=1x: it ignores b.N.
func BenchmarkReplicas(b *testing.B) {
	ctx := context.Background()
	slice, rounds := benchTiming()
	const clients = 8
	primary := pgtest.StartOwned(b)
	replica := pgtest.StartReplica(b, primary)
	cfg := pgtest.NewDeployment(b, primary, "replbench", layout())
	loadFixture(b, cfg)
	withReplicas := cfg
	withReplicas.Shards = slices.Clone(cfg.Shards)
	for i, sh := range withReplicas.Shards {
		dsn, err := replica.Moved(sh.Primary)
		if err != nil {
			b.Fatal(err)
		}
		withReplicas.Shards[i].Replicas = []string{dsn + "&application_name=" + replicaApp}
	}
	plainURL, plain := benchRouter(b, cfg, TraceConfig{})
	replURL, repl := benchRouter(b, withReplicas, TraceConfig{})
	tok := benchToken(b, "region:03")
	client := newBenchClient()
	path := fmt.Sprintf("/v1/markets/%d", milano)

	// A market written through the router gives the position that the
	// third setup's reads carry.
	req, _ := http.NewRequest(http.MethodPost, replURL+"/v1/markets", strings.NewReader(`{"code":"MI990","name":"Banco di prova","comune":"015146"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := client.c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	res.Body.Close()
	pos := res.Header.Get(shardmap.ConsistencyHeader)
	if res.StatusCode != http.StatusCreated || !strings.HasPrefix(pos, "nw:") {
		b.Fatalf("POST /v1/markets = %d with %s %q, want 201 with nw:<position>", res.StatusCode, shardmap.ConsistencyHeader, pos)
	}
	c, err := shardmap.ParseConsistency(pos)
	if err != nil {
		b.Fatal(err)
	}
	carrying := shardmap.WithConsistency(ctx, c)

	tr, err := regions.ParseTerritory("region:03")
	if err != nil {
		b.Fatal(err)
	}
	sc, err := tr.Scope("03", "bench")
	if err != nil {
		b.Fatal(err)
	}
	nw, err := repl.For("03")
	if err != nil {
		b.Fatal(err)
	}
	// Both kinds of read must go to the replica before the measurement.
	for _, ctx := range []context.Context{ctx, carrying} {
		waitServedBy(b, ctx, nw, sc, replicaApp)
	}
	direct := func(ctx context.Context, h *shardmap.Holder) func() error {
		return func() error {
			sh, err := h.For("03")
			if err != nil {
				return err
			}
			_, err = registry.GetMarket(ctx, sh, sc, milano)
			return err
		}
	}
	setups := []struct {
		name           string
		direct, router func() error
	}{
		{"no replicas", direct(ctx, plain), func() error { return client.get(plainURL+path, tok) }},
		{"replica behind each shard", direct(ctx, repl), func() error { return client.get(replURL+path, tok) }},
		{"replicas, reads carrying " + shardmap.ConsistencyHeader, direct(carrying, repl),
			func() error { return client.get(replURL+path, tok, shardmap.ConsistencyHeader, pos) }},
	}
	var arms []func() error
	for _, s := range setups {
		arms = append(arms, s.direct, s.router)
	}
	for _, do := range arms { // warm the pools
		if err := do(); err != nil {
			b.Fatal(err)
		}
	}
	nwDB := databaseOf(b, pgtest.Shard(b, cfg, "nw").Primary)
	before := commits(b, replica.AdminDSN, nwDB)
	runs := interleave(b, arms, clients, rounds, slice)
	time.Sleep(11 * time.Second) // an idle backend reports its statistics within 10s
	served := commits(b, replica.AdminDSN, nwDB) - before

	var table strings.Builder
	fmt.Fprintf(&table, "\nmarket of a region, %d clients (%d rounds of %s per arm):\n"+
		"| setup | router req/s | router p50 ms | router p99 ms | direct req/s | direct p50 ms | direct p99 ms | router p50 over direct | router throughput vs no replicas | router p50 vs no replicas |\n"+
		"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n", clients, rounds, slice)
	base, baseP50 := runs[1].perSecond(), runs[1].lat.percentile(50)
	for i, s := range setups {
		d, r := &runs[2*i], &runs[2*i+1]
		p50 := r.lat.percentile(50)
		fmt.Fprintf(&table, "| %s | %.0f | %.3f | %.3f | %.0f | %.3f | %.3f | %+.3f ms | %.3f | %+.3f ms |\n", s.name,
			r.perSecond(), ms(p50), ms(r.lat.percentile(99)),
			d.perSecond(), ms(d.lat.percentile(50)), ms(d.lat.percentile(99)),
			ms(p50-d.lat.percentile(50)), r.perSecond()/base, ms(p50-baseP50))
		key := strings.NewReplacer(" ", "-", ",", "").Replace(s.name)
		b.ReportMetric(r.perSecond(), key+"/router-req/s")
		b.ReportMetric(d.perSecond(), key+"/direct-req/s")
	}
	var onReplica int
	for i := 2; i < len(runs); i++ {
		onReplica += len(runs[i].lat.d)
	}
	b.Log(table.String())
	b.Logf("the replica's database %s committed %d transactions during the run; the replica setups made %d reads", nwDB, served, onReplica)
	b.Logf("replica after the run: %+v", nw.ReplicaLags()[0])
}

// waitServedBy waits until a read of sh in ctx and scope sc is answered
// by a connection named app, as the lag monitor lets a replica serve
// reads within a second or two of starting, failing b after 30s.
func waitServedBy(b *testing.B, ctx context.Context, sh *shardmap.Shard, sc regions.Scope, app string) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got string
		err := sh.Read(ctx, sc, func(batch *pgx.Batch) {
			batch.Queue(`SELECT current_setting('application_name')`).QueryRow(func(row pgx.Row) error { return row.Scan(&got) })
		})
		if err != nil {
			b.Fatal(err)
		}
		if got == app {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("reads of %s still answered by %q after 30s, want %q (replica: %+v)", sh.Name(), got, app, sh.ReplicaLags())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// databaseOf returns the database that dsn names.
func databaseOf(b *testing.B, dsn string) string {
	b.Helper()
	c, err := pgx.ParseConfig(dsn)
	if err != nil {
		b.Fatal(err)
	}
	return c.Database
}

// commits returns the transactions database db of the server at admin
// has committed, as its own statistics count them (a replica counts the
// reads it serves).
func commits(b *testing.B, admin, db string) int64 {
	b.Helper()
	var n int64
	if err := pgtest.Connect(b, admin).QueryRow(context.Background(),
		`SELECT xact_commit FROM pg_stat_database WHERE datname = $1`, db).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
