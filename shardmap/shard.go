package shardmap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/dmshub/dmsrouter/regions"
)

// DefaultMaxConns bounds a shard's pool when its config leaves max_conns at 0.
const DefaultMaxConns = 8

// Shard is one regional database: a bounded pool on its primary and one
// per replica, each behind its own circuit breaker, which opens after
// consecutive infrastructure failures so that a sick database fails fast
// instead of holding requests. Every call runs under the router's own
// deadline (DatabaseConfig.QueryTimeout), and a prober per server closes
// its open breaker as soon as the server answers again.
type Shard struct {
	name           string
	cfg            ShardConfig
	db             DatabaseConfig
	primary        *backend
	replicas       []*backend
	next           atomic.Uint32
	acquireTimeout time.Duration
	queryTimeout   time.Duration
	openTimeout    time.Duration
	obs            *observer
	stopProbes     context.CancelFunc // nil until the probers run
	probes         sync.WaitGroup
}

// backend is one database server of a shard: its pool, its breaker, and
// what its prober connects with.
type backend struct {
	role     string // "primary" or "replica"
	pool     *pgxpool.Pool
	settings gobreaker.Settings
	// cb is the current breaker; the prober replaces an open one with a
	// new, closed one when the server answers (gobreaker cannot be reset).
	cb    atomic.Pointer[gobreaker.CircuitBreaker[struct{}]]
	probe *pgconn.Config
	// lagConn is what the lag monitor connects with; lag is its last
	// measurement of a replica (nil before the first).
	lagConn *pgconn.Config
	lag     atomic.Pointer[replicaLag]
	// calls are the router's calls to the server over the last minute.
	calls window
	// maxCalls bounds the calls in progress (running or waiting for a
	// connection), max_conns + DatabaseConfig.MaxWaiting; 0 is no bound.
	maxCalls int32
	inCalls  atomic.Int32
}

// breaker returns b's current breaker.
func (b *backend) breaker() *gobreaker.CircuitBreaker[struct{}] { return b.cb.Load() }

func newShard(cfg ShardConfig, db DatabaseConfig, obs *observer) (*Shard, error) {
	s := &Shard{
		name:           cfg.Name,
		cfg:            cfg,
		db:             db,
		acquireTimeout: db.AcquireTimeout,
		queryTimeout:   db.queryTimeout(),
		openTimeout:    db.BreakerOpenTimeout,
		obs:            obs,
	}
	var err error
	if s.primary, err = newBackend(cfg.Name, "primary", cfg.Primary, cfg.MaxConns, db, obs); err != nil {
		return nil, fmt.Errorf("shard %s primary: %w", cfg.Name, err)
	}
	for i, dsn := range cfg.Replicas {
		b, err := newBackend(fmt.Sprintf("%s/replica%d", cfg.Name, i), "replica", dsn, cfg.MaxConns, db, obs)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("shard %s replica %d: %w", cfg.Name, i, err)
		}
		s.replicas = append(s.replicas, b)
	}
	s.startProbes()
	return s, nil
}

func newBackend(name, role, dsn string, maxConns int32, db DatabaseConfig, obs *observer) (*backend, error) {
	pool, err := newPool(name, dsn, maxConns, db, obs)
	if err != nil {
		return nil, err
	}
	b := &backend{role: role, pool: pool, settings: gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     db.BreakerOpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= db.BreakerFailures
		},
		// Only infrastructure failures count; everything else (a missing
		// row, a constraint, a canceled request) is neither success nor
		// failure. Nor is a call that timed out waiting for a pooled
		// connection: the router's own backlog, which under overload
		// opened the breakers of healthy servers (BENCHMARKS.md, "The open
		// loop's 504s"); a hung server's calls still time out holding
		// their connections, and those count.
		IsExcluded: func(err error) bool { return err != nil && (!IsInfrastructure(err) || errors.Is(err, errPoolBusy)) },
	}}
	b.cb.Store(gobreaker.NewCircuitBreaker[struct{}](b.settings))
	if db.MaxWaiting > 0 {
		b.maxCalls = pool.Config().MaxConns + db.MaxWaiting
	}
	// The prober connects as the pool does, under its own application_name.
	b.probe = pool.Config().ConnConfig.Config.Copy()
	b.probe.RuntimeParams["application_name"] += " probe"
	b.lagConn = pool.Config().ConnConfig.Config.Copy()
	b.lagConn.RuntimeParams["application_name"] += " lag"
	return b, nil
}

func newPool(name, dsn string, maxConns int32, db DatabaseConfig, obs *observer) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	pc.MaxConns = maxConns
	pc.MinConns = 0
	pc.MaxConnIdleTime = 5 * time.Minute
	pc.HealthCheckPeriod = 15 * time.Second
	pc.ConnConfig.ConnectTimeout = db.ConnectTimeout
	rp := pc.ConnConfig.RuntimeParams
	if rp["application_name"] == "" {
		rp["application_name"] = "dmsrouter/" + name
	}
	rp["statement_timeout"] = strconv.FormatInt(db.StatementTimeout.Milliseconds(), 10)
	rp["idle_in_transaction_session_timeout"] = strconv.FormatInt((2 * db.StatementTimeout).Milliseconds(), 10)
	rp["timezone"] = "Europe/Rome"
	// No JIT compilation, unless the shard's DSN sets jit, as a parameter
	// or in options (which a startup parameter of ours would override).
	// PostgreSQL compiles a statement whose estimated cost passes
	// jit_above_cost at every execution, cached plan or not, and the
	// router's largest statements cross those thresholds by their row
	// estimates, not by work that compiled expressions would speed up: at
	// full scale a 10,000-row batch cost 403-489 ms of server CPU with it
	// and 233-279 without it (BENCHMARKS.md, "JIT").
	if rp["jit"] == "" && !strings.Contains(rp["options"], "jit=") {
		rp["jit"] = "off"
	}
	if obs.warm != nil {
		pc.AfterConnect = warmConn(name, db, obs)
	}
	return pgxpool.NewWithConfig(context.Background(), pc)
}

// warmConn returns the pool hook that warms each new connection of pool
// name before it serves: the scope statements (warmScope), then obs.warm.
// The warm-up runs under the router's deadline
// (DatabaseConfig.QueryTimeout) and each of its statements under the
// server's statement_timeout, so it delays the acquire that made the
// connection by a bounded time. A warm-up that fails is logged and the
// connection serves cold: its statements plan on first use, as without a
// warm-up; a transaction it left open is rolled back. Only a connection the
// warm-up left closed (the deadline passed mid-statement) is refused, which
// fails that acquire; the pool connects anew at the next one.
func warmConn(name string, db DatabaseConfig, obs *observer) func(context.Context, *pgx.Conn) error {
	return func(ctx context.Context, conn *pgx.Conn) error {
		start := time.Now()
		wctx, cancel := context.WithTimeout(ctx, db.queryTimeout())
		defer cancel()
		err := warmScope(wctx, conn)
		if err == nil {
			err = obs.warm(wctx, conn)
		}
		if err == nil {
			return nil
		}
		obs.log.Warn("connection not warmed", slog.String("pool", name),
			slog.Duration("elapsed", time.Since(start)), slog.String("error", err.Error()))
		if conn.IsClosed() {
			return fmt.Errorf("warm up a new connection of %s: %w", name, err)
		}
		if conn.PgConn().TxStatus() != 'I' {
			rctx, cancel := context.WithTimeout(ctx, db.StatementTimeout)
			defer cancel()
			if _, err := conn.Exec(rctx, "ROLLBACK"); err != nil {
				return fmt.Errorf("warm up a new connection of %s: roll back: %w", name, err)
			}
		}
		return nil
	}
}

// warmScope prepares, on conn, the scope statements of the reads scoped to
// a region (Read and ReadGeneric, for a part of a region and for a whole
// one), and runs one with no region, so that a connection's first read
// neither prepares its scope statement nor pays for a first call of
// dms.fence in the backend: loading PL/pgSQL and compiling the function,
// about 10 ms of the server's CPU at full scale. Paid at first use
// instead, on the many connections a burst of requests takes at once, it
// stalled every region for up to a second after a router's warm start
// (BENCHMARKS.md, "The stall after a warm start"). A read served here no
// longer calls dms.fence (fenceReadSQL), but a refused one does, and
// refusals come in bursts too: after a move, at every read of the region
// a stale router sends. No region is served, so the statement calls
// dms.fence, which refuses it (DMF01), in a read-only transaction rolled
// back, so that it holds and changes nothing.
func warmScope(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, WarmBegin); err != nil {
		return fmt.Errorf("warm the scope statements: %w", err)
	}
	// Only the scopes' shapes matter: they choose the statements' texts.
	part, whole := regions.Scope{Region: "03", Comune: "015146"}, regions.Scope{Region: "03"}
	texts := []string{
		readScopeStatement(part, false), readScopeStatement(part, true),
		readScopeStatement(whole, false), readScopeStatement(whole, true),
	}
	for _, text := range texts {
		if _, err := conn.Prepare(ctx, text, text); err != nil {
			return fmt.Errorf("warm the scope statements: %w", err)
		}
	}
	switch _, err := conn.Exec(ctx, texts[0], nil, "", "", "", ""); {
	case err == nil:
		return errors.New("warm the read fence: it admitted no region")
	case !errors.Is(fenceSentinel(err), ErrNotOwned):
		return fmt.Errorf("warm the read fence: %w", err)
	}
	_, err := conn.Exec(ctx, "ROLLBACK")
	return err
}

// WarmBegin opens the transaction of a new connection's warm-up (warmScope,
// and Options.Warm's, registry.Warm): read-only, and bounding how long it
// waits for a lock, so that a table locked against readers (a migration's
// DDL) leaves the connection to serve cold rather than late.
const WarmBegin = `BEGIN READ ONLY; SET LOCAL lock_timeout = '100ms'`

// WarmPools opens up to conns connections in each of the shard's pools
// (the primary's and the replicas', each at most its max_conns), so that
// each new one runs Options.Warm now rather than on a request's acquire.
// A pool that holds conns connections already is not touched, so that
// calling it again costs nothing and takes no connection from requests.
// It returns when all are open or ctx is done; the error joins every
// pool's first failure.
func (s *Shard) WarmPools(ctx context.Context, conns int) error {
	var errs []error
	for _, b := range s.backends() {
		if b.filled(conns) {
			continue
		}
		if err := b.fill(ctx, conns); err != nil {
			errs = append(errs, fmt.Errorf("warm the pools of shard %s (%s): %w", s.name, b.role, err))
		}
	}
	return errors.Join(errs...)
}

// Filled reports whether each of the shard's pools holds conns
// connections (or its max_conns), open or opening.
func (s *Shard) Filled(conns int) bool {
	for _, b := range s.backends() {
		if !b.filled(conns) {
			return false
		}
	}
	return true
}

func (b *backend) filled(conns int) bool {
	return b.pool.Stat().TotalConns() >= int32(min(conns, int(b.pool.Config().MaxConns)))
}

// fill acquires up to n connections of b's pool at once (at most its
// maximum), so that the new ones connect and warm up, and releases them.
// A connection is released as soon as it is ready once the pool holds n
// connections, open or opening: holding every one until the slowest has
// warmed would leave a filled pool nothing to serve requests with for the
// whole fill, which on a busy server outlasts acquire_timeout (measured at
// full scale, BENCHMARKS.md "Cold statements"). It returns the first
// failure, after every acquire has returned.
func (b *backend) fill(ctx context.Context, n int) error {
	n = min(n, int(b.pool.Config().MaxConns))
	conns := make(chan *pgxpool.Conn, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			c, err := b.pool.Acquire(ctx)
			if err != nil {
				errs <- err
				return
			}
			if b.pool.Stat().TotalConns() >= int32(n) {
				c.Release()
				c = nil
			}
			conns <- c
		}()
	}
	var first error
	held := make([]*pgxpool.Conn, 0, n)
	for range n {
		select {
		case c := <-conns:
			if c != nil {
				held = append(held, c)
			}
		case err := <-errs:
			if first == nil {
				first = err
			}
		}
	}
	for _, c := range held {
		c.Release()
	}
	return first
}

// Name returns the shard's name from the configuration.
func (s *Shard) Name() string { return s.name }

// Config returns the shard's configuration.
func (s *Shard) Config() ShardConfig { return s.cfg }

// State returns the primary's breaker state: "closed", "half-open" or "open".
func (s *Shard) State() string { return s.primary.breaker().State().String() }

// Stat returns the primary pool's statistics.
func (s *Shard) Stat() *pgxpool.Stat { return s.primary.pool.Stat() }

// Close stops the shard's probers and closes its pools, waiting for
// acquired connections to be released. Closing twice is harmless.
func (s *Shard) Close() {
	if s.stopProbes != nil {
		s.stopProbes()
		s.probes.Wait()
	}
	for _, b := range s.backends() {
		b.pool.Close()
	}
}

// backends returns the primary, then the replicas.
func (s *Shard) backends() []*backend {
	if s.primary == nil {
		return nil
	}
	return append([]*backend{s.primary}, s.replicas...)
}

// startProbes starts one prober per server of the shard, and the lag
// monitor of its replicas (watchLag) when it has any; Close stops them.
func (s *Shard) startProbes() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopProbes = cancel
	interval := s.db.probeInterval()
	timeout := min(interval, s.db.ConnectTimeout)
	for _, b := range s.backends() {
		s.probes.Go(func() { b.watch(ctx, interval, timeout) })
	}
	if len(s.replicas) > 0 {
		s.probes.Go(func() { s.watchLag(ctx) })
	}
}

// watch checks every interval whether b's breaker is closed and, when it is
// not, probes b's server; the first answer replaces the breaker with a
// closed one. A region is so served again within about an interval of its
// server answering, instead of when the open timeout lets a request
// through. watch returns when ctx is done.
func (b *backend) watch(ctx context.Context, interval, timeout time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if b.breaker().State() != gobreaker.StateClosed && b.ping(ctx, timeout) == nil {
			b.cb.Store(gobreaker.NewCircuitBreaker[struct{}](b.settings))
		}
	}
}

// ping opens a new connection to b's server, outside the pool (whose
// connections may be stale or all held by hung requests), and runs SELECT
// 1 on it, all within timeout.
func (b *backend) ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, b.probe)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Exec(ctx, "SELECT 1").Close()
}

// queryTimeoutKey is the context key of WithQueryTimeout.
type queryTimeoutKey struct{}

// WithQueryTimeout returns a context whose shard calls get d as the
// router's deadline instead of DatabaseConfig.QueryTimeout: for the few
// calls that may legitimately run longer than the statements reads are
// sized for, such as a bulk ingest that raises its own statement_timeout.
func WithQueryTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, queryTimeoutKey{}, d)
}

// scopeSQL sets the transaction-local settings that row-level security reads.
const scopeSQL = `SELECT set_config('dms.region', $1, true), set_config('dms.province', $2, true),
	set_config('dms.comune', $3, true), set_config('dms.market', $4, true), set_config('dms.user', $5, true)`

// readOnlySQL, appended to scopeSQL, makes the transaction read-only.
const readOnlySQL = `, set_config('transaction_read_only', 'on', true)`

// frozenDatabaseSQL, appended to scopeSQL, makes a write transaction
// read-only when its database is frozen for maintenance (ALTER DATABASE
// ... SET default_transaction_read_only = on, docs/architecture.md#17).
// That setting reaches only sessions that start after it, and the pool's
// connections may be older: every write transaction looks the setting up
// in the catalog, so a freeze reaches every connection of every router at
// its next write, which fails with SQLSTATE 25006.
const frozenDatabaseSQL = `, CASE WHEN EXISTS (
		SELECT FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
		WHERE d.datname = current_database() AND s.setrole = 0
		  AND EXISTS (SELECT FROM unnest(s.setconfig) c WHERE c ~* '^default_transaction_read_only=(on|true|yes|1)$'))
	THEN set_config('transaction_read_only', 'on', true) END`

// regionReaderSQL, appended to scopeSQL, switches the transaction to the
// role RegionReader, for reads whose scope is a whole region.
const regionReaderSQL = `, set_config('role', '` + RegionReader + `', true)`

// RowWriter is the database role of BatchAsWriter (migration 00022): its
// scope policies are the login role's with each scope setting read per row
// rather than once per statement in a subquery, which a statement that
// reads and writes a few rows pays for at every execution (an InitPlan per
// setting and table: 23 in a check-in). It admits exactly the rows the
// login role admits, and holds only the rights of a check-in. The login
// role switches to it for one transaction and holds none of its rights
// otherwise.
const RowWriter = "dms_writer"

// rowWriterSQL, appended to scopeSQL, switches the transaction to the role
// RowWriter.
const rowWriterSQL = `, set_config('role', '` + RowWriter + `', true)`

// The fence (migration 00013), put first in the scope statement of a call
// scoped to a region, so that a database that does not serve the region
// (or, for a write, holds it frozen) refuses the call before it reads or
// writes anything, in the same round trip. A write's fence takes a share
// lock on the region's row of dms.shard_regions until the transaction
// ends, which is what a move's freeze waits for.
//
// A read takes no lock, and its fence reads the region's row itself
// (dms_app may read dms.shard_regions, migration 00010): dms.fence, whose
// refusal it raises, is called only when the row does not say the region
// is served here, which is what dms.fence checks for a read. The scope
// statement cost 0.036-0.046 ms more of the server's CPU with the
// PL/pgSQL call than without a fence, and reading the row instead saves
// 0.008 ms of it at one client and 0.024 at 16 (BENCHMARKS.md, "The read
// fence in the scope statement"). The region is cast to text first, so
// that $1 stays a text parameter for the settings that follow.
const (
	fenceReadSQL = `SELECT CASE WHEN (SELECT s.owned FROM dms.shard_regions s WHERE s.region_id = $1::text::smallint)
	THEN NULL ELSE dms.fence($1, false) END, `
	fenceWriteSQL = `SELECT dms.fence($1, true), `
)

// scopeStatement returns the statement that opens a scoped call: the
// settings of scopeSQL, the fence when fenced (the scope names a region),
// and then rest (readOnlySQL, regionReaderSQL, frozenDatabaseSQL,
// rowWriterSQL). forWrite chooses the write's fence.
func scopeStatement(fenced, forWrite bool, rest ...string) string {
	stmt := scopeSQL
	if fenced {
		fence := fenceReadSQL
		if forWrite {
			fence = fenceWriteSQL
		}
		stmt = fence + strings.TrimPrefix(scopeSQL, "SELECT ")
	}
	return stmt + strings.Join(rest, "")
}

// RegionReader is the database role of reads whose scope is a whole region
// (migration 00005): it may only read, and its row-level security policies
// compare the region alone, which the planner estimates well, where the
// login role's policies also narrow by province, comune and market when
// those are set. The login role switches to it for one transaction and
// holds none of its rights otherwise.
const RegionReader = "dms_region"

func scopeArgs(sc regions.Scope) []any {
	market := ""
	if sc.Market != 0 {
		market = strconv.FormatInt(sc.Market, 10)
	}
	return []any{string(sc.Region), sc.Province, sc.Comune, market, sc.User}
}

// Read runs the queries that queue adds to a batch in one read-only
// transaction scoped to sc, in a single round trip: the scope settings and
// the queries travel together and run in the implicit transaction that
// ends at the batch's Sync. A scope of a whole region reads as the role
// RegionReader. Results are read by the callbacks the queued
// queries carry (pgx.QueuedQuery.Query, QueryRow, Exec). Reads go to a
// replica when the shard has any whose breaker is not open and whose lag,
// as the lag monitor last measured it, is under DatabaseConfig.MaxReplicaLag
// and, when ctx carries a Consistency (WithConsistency), that had replayed
// its position on this shard; otherwise to the primary. The error is an *UnavailableError or
// *TimeoutError for infrastructure failures (a read that outlives the
// router's deadline, DatabaseConfig.QueryTimeout, is a *TimeoutError),
// otherwise what a callback or the database returned.
//
// A read that a replica cannot serve (down, or its breaker open) is retried
// once on the primary, so queue may be called twice: its callbacks must
// assign their results, not append to them.
func (s *Shard) Read(ctx context.Context, sc regions.Scope, queue func(b *pgx.Batch)) error {
	return s.read(ctx, sc, false, queue)
}

// ReadGeneric is Read with the transaction's statements run on their
// generic plans (plan_cache_mode force_generic_plan), for reads whose
// statements PostgreSQL would otherwise plan anew at every execution, at a
// cost greater than running them (the presences' monthly partitions, or a
// national leg's rollups). The setting travels in the scope statement, one
// statement fewer per read than a statement of its own (no difference in
// CPU measured through the noise, BENCHMARKS.md).
func (s *Shard) ReadGeneric(ctx context.Context, sc regions.Scope, queue func(b *pgx.Batch)) error {
	return s.read(ctx, sc, true, queue)
}

// genericPlansSQL, appended to scopeSQL, makes the transaction's later
// statements use the plan cache's generic plans.
const genericPlansSQL = `, set_config('plan_cache_mode', 'force_generic_plan', true)`

// read is Read, with genericPlansSQL appended to the scope statement when
// generic.
func (s *Shard) read(ctx context.Context, sc regions.Scope, generic bool, queue func(b *pgx.Batch)) error {
	read := func(ctx context.Context, conn *pgxpool.Conn) error {
		b := &pgx.Batch{}
		b.Queue(readScopeStatement(sc, generic), scopeArgs(sc)...)
		queue(b)
		return conn.SendBatch(ctx, b).Close()
	}
	backend := s.reader(ctx)
	err := s.do(ctx, "read", sc, backend, read)
	var unavailable *UnavailableError
	if backend != s.primary && errors.As(err, &unavailable) {
		err = s.do(ctx, "read", sc, s.primary, read)
	}
	return err
}

// readScopeStatement returns the statement that opens a read scoped to sc,
// with genericPlansSQL appended when generic: a scope of a whole region
// reads as the role RegionReader. It is one of eight texts, built once
// (readScopes) rather than at every read.
func readScopeStatement(sc regions.Scope, generic bool) string {
	whole := sc.Province == "" && sc.Comune == "" && sc.Market == 0
	return readScopes[index(sc.Region != "")][index(whole)][index(generic)]
}

// readScopes are readScopeStatement's texts, indexed by whether the scope
// names a region (and so meets the fence), whether it is a whole region,
// and whether the read uses generic plans.
var readScopes = scopeTexts(func(fenced, whole, generic bool) string {
	rest := []string{readOnlySQL}
	if whole {
		rest = append(rest, regionReaderSQL)
	}
	if generic {
		rest = append(rest, genericPlansSQL)
	}
	return scopeStatement(fenced, false, rest...)
})

// primaryScopeStatement returns the statement that opens a transaction or
// a batch on the primary scoped to sc: the write's fence when forWrite,
// the read's otherwise, then frozenDatabaseSQL, and rowWriterSQL when
// asWriter. It is one of eight texts, built once (primaryScopes), as the
// reads' are.
func primaryScopeStatement(sc regions.Scope, forWrite, asWriter bool) string {
	return primaryScopes[index(sc.Region != "")][index(forWrite)][index(asWriter)]
}

// primaryScopes are primaryScopeStatement's texts, indexed by whether the
// scope names a region, whether the call writes, and whether it runs as
// the role RowWriter.
var primaryScopes = scopeTexts(func(fenced, forWrite, asWriter bool) string {
	rest := []string{frozenDatabaseSQL}
	if asWriter {
		rest = append(rest, rowWriterSQL)
	}
	return scopeStatement(fenced, forWrite, rest...)
})

// scopeTexts returns the table of the texts build gives for every three
// choices, indexed by them (index), so that a call picks its scope
// statement instead of building it.
func scopeTexts(build func(a, b, c bool) string) (t [2][2][2]string) {
	for _, a := range []bool{false, true} {
		for _, b := range []bool{false, true} {
			for _, c := range []bool{false, true} {
				t[index(a)][index(b)][index(c)] = build(a, b, c)
			}
		}
	}
	return t
}

// index is 1 for true and 0 for false.
func index(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Tx runs fn in a transaction on the primary with the given access mode,
// after setting the scope sc for row-level security. fn's error rolls the
// transaction back and is returned as is; infrastructure failures come back
// as *UnavailableError or *TimeoutError, and a read-only database (also one
// frozen after the connection opened, see frozenDatabaseSQL) as ErrReadOnly.
// The router's deadline covers the whole transaction, fn's statements
// included whatever context they run with: when it passes, the connection
// is closed under them and the error is a *TimeoutError.
//
// A write transaction on a shard with replicas, in a ctx that carries a
// Consistency, records its commit's WAL position there (see commitAt); the
// COMMIT and the position travel in one round trip.
func (s *Shard) Tx(ctx context.Context, sc regions.Scope, mode pgx.TxAccessMode, fn func(pgx.Tx) error) error {
	return s.do(ctx, "tx", sc, s.primary, func(ctx context.Context, conn *pgxpool.Conn) error {
		opts := pgx.TxOptions{AccessMode: mode}
		if mode == pgx.ReadWrite {
			// A plain BEGIN: an explicit READ WRITE would override a
			// database frozen with default_transaction_read_only.
			opts.AccessMode = ""
		}
		tx, err := conn.BeginTx(ctx, opts)
		if err != nil {
			return err
		}
		committed := false
		defer func() {
			if !committed {
				tx.Rollback(ctx) // also after a panic in fn
			}
		}()
		if _, err := tx.Exec(ctx, primaryScopeStatement(sc, mode != pgx.ReadOnly, false), scopeArgs(sc)...); err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			return err
		}
		committed = true
		if c := s.tracking(ctx); c != nil && mode != pgx.ReadOnly {
			return s.commitAt(ctx, conn, c)
		}
		return tx.Commit(ctx)
	})
}

// positionSQL returns where the primary's WAL ends now. Read after a
// commit on the same connection, it is at or after the commit record's
// end, so a replica that replayed it has the commit. It is the insert
// position, not pg_current_wal_lsn (what is written out so far), which
// with synchronous_commit off may still lie before the commit record.
const positionSQL = `SELECT pg_current_wal_insert_lsn()::text`

// tracking returns ctx's Consistency when writes on s must record their
// position in it: s has replicas and ctx carries one.
func (s *Shard) tracking(ctx context.Context) *Consistency {
	if len(s.replicas) == 0 {
		return nil
	}
	return consistencyOf(ctx)
}

// commitAt commits the transaction open on conn and records in c the WAL
// position right after it, in one round trip: COMMIT and positionSQL in
// one simple query, which runs the SELECT only when the COMMIT succeeded.
// A COMMIT that rolled back (the transaction had failed) is
// pgx.ErrTxCommitRollback, as pgx.Tx.Commit returns.
func (s *Shard) commitAt(ctx context.Context, conn *pgxpool.Conn, c *Consistency) error {
	res, err := conn.Conn().PgConn().Exec(ctx, "COMMIT; "+positionSQL).ReadAll()
	if err != nil {
		return err
	}
	if len(res) != 2 || res[0].CommandTag.String() != "COMMIT" {
		return pgx.ErrTxCommitRollback
	}
	return s.recordPosition(c, res[1].Rows)
}

// recordPosition records in c the position that positionSQL returned in rows.
func (s *Shard) recordPosition(c *Consistency, rows [][][]byte) error {
	if len(rows) != 1 || len(rows[0]) != 1 {
		return errors.New("read the WAL position after a commit: no position in the answer")
	}
	lsn, err := ParseLSN(string(rows[0][0]))
	if err != nil {
		return fmt.Errorf("read the WAL position after a commit: %w", err)
	}
	c.record(s.name, lsn)
	return nil
}

// Batch sends the statements queue adds to the primary in one round trip,
// after setting the scope sc, and runs them as one implicit transaction:
// it commits when the last statement has run, and writes nothing when any
// fails. A write that fits in statements known up front takes one round
// trip instead of Tx's three or more, and the row locks it takes are held
// only until its own commit, never while the client thinks. Errors as Tx.
//
// On a shard with replicas, in a ctx that carries a Consistency, the batch
// records its commit's WAL position there, still in one round trip: its
// statements run between an explicit BEGIN and COMMIT, and positionSQL
// follows the COMMIT.
func (s *Shard) Batch(ctx context.Context, sc regions.Scope, queue func(b *pgx.Batch)) error {
	return s.batch(ctx, sc, false, queue)
}

// BatchAsWriter is Batch with its statements run as the role RowWriter,
// whose scope policies read the scope per row: for writes that read and
// write a few rows, within the rights of a check-in (markets, market days,
// stalls, concessions and vendors read; presences, audit rows and
// Idempotency-Keys inserted).
func (s *Shard) BatchAsWriter(ctx context.Context, sc regions.Scope, queue func(b *pgx.Batch)) error {
	return s.batch(ctx, sc, true, queue)
}

// batch is Batch, run as the role RowWriter when asWriter.
func (s *Shard) batch(ctx context.Context, sc regions.Scope, asWriter bool, queue func(b *pgx.Batch)) error {
	c := s.tracking(ctx)
	return s.do(ctx, "batch", sc, s.primary, func(ctx context.Context, conn *pgxpool.Conn) error {
		b := &pgx.Batch{}
		if c != nil {
			b.Queue("BEGIN")
		}
		b.Queue(primaryScopeStatement(sc, true, asWriter), scopeArgs(sc)...)
		queue(b)
		if c == nil {
			return conn.SendBatch(ctx, b).Close()
		}
		b.Queue("COMMIT")
		var pos []byte
		b.Queue(positionSQL).QueryRow(func(row pgx.Row) error { return row.Scan(&pos) })
		err := conn.SendBatch(ctx, b).Close()
		if err != nil {
			// A failed statement leaves the explicit transaction open and
			// aborted; the pool would discard the connection.
			if pc := conn.Conn().PgConn(); !pc.IsClosed() && pc.TxStatus() != 'I' {
				conn.Exec(ctx, "ROLLBACK")
			}
			return err
		}
		return s.recordPosition(c, [][][]byte{{pos}})
	})
}

// Ping checks that the primary answers: on an idle pooled connection,
// through the breaker, when the pool holds one, and otherwise on a
// connection of its own outside the pool, as the prober does. A pool
// without an idle connection would open one for the ping and run its
// warm-up first (Options.Warm), which on a loaded machine outlasts the
// readiness probe that pings: every shard then looked unavailable to
// /readyz while each answered.
func (s *Shard) Ping(ctx context.Context) error {
	if b := s.primary; b.pool.Stat().IdleConns() == 0 {
		// Measured as the pooled ping is: the ping's duration and outcome
		// and the status page's window.
		start := time.Now()
		err := b.ping(ctx, s.db.ConnectTimeout)
		outcome := "ok"
		if err != nil {
			outcome = "unavailable"
		}
		end := time.Now()
		b.calls.record(end, end.Sub(start), err != nil)
		s.obs.queryDuration.Record(ctx, end.Sub(start).Seconds(), s.obs.queryLabels(s.name, "ping", b.role, "", outcome))
		return err
	}
	return s.do(ctx, "ping", regions.Scope{}, s.primary, func(ctx context.Context, conn *pgxpool.Conn) error {
		return conn.Ping(ctx)
	})
}

// reader picks the backend for a read in ctx: the replicas in turn,
// skipping those that may not serve it (readable), else the primary.
func (s *Shard) reader(ctx context.Context) *backend {
	n := len(s.replicas)
	if n == 0 {
		return s.primary
	}
	var need LSN
	if c := consistencyOf(ctx); c != nil {
		need = c.position(s.name)
	}
	now := time.Now()
	start := int(s.next.Add(1))
	for i := range n {
		b := s.replicas[(start+i)%n]
		if s.readable(b, need, now) {
			return b
		}
	}
	return s.primary
}

func (s *Shard) acquire(ctx context.Context, p *pgxpool.Pool) (*pgxpool.Conn, error) {
	actx, cancel := context.WithTimeout(ctx, s.acquireTimeout)
	defer cancel()
	conn, err := p.Acquire(actx)
	if err != nil && ctx.Err() == nil && actx.Err() != nil {
		return nil, fmt.Errorf("acquire connection within %s: %w: %w", s.acquireTimeout, errPoolBusy, context.DeadlineExceeded)
	}
	return conn, err
}

// call acquires a connection of pool and runs fn on it under the router's
// deadline: QueryTimeout from now, or the timeout WithQueryTimeout put in
// ctx. fn gets the deadline in its context, and the connection is closed
// when the deadline passes, so that statements run with another context (a
// Tx callback's own) cannot wait on a frozen server either. A call that
// fails after its deadline passed fails as a timeout.
func (s *Shard) call(ctx context.Context, pool *pgxpool.Pool, fn func(context.Context, *pgxpool.Conn) error) error {
	timeout := s.queryTimeout
	if d, ok := ctx.Value(queryTimeoutKey{}).(time.Duration); ok && d > 0 {
		timeout = d
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := s.withConn(dctx, pool, fn)
	if err != nil && ctx.Err() == nil && dctx.Err() != nil {
		if !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		err = fmt.Errorf("no answer within the query timeout of %s: %w", timeout, err)
	}
	return err
}

// withConn runs fn on a connection of pool that is closed under it when ctx
// is done.
func (s *Shard) withConn(ctx context.Context, pool *pgxpool.Pool, fn func(context.Context, *pgxpool.Conn) error) error {
	conn, err := s.acquire(ctx, pool)
	if err != nil {
		return err
	}
	netConn := conn.Conn().PgConn().Conn()
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		netConn.Close()
		close(closed)
	})
	err = fn(ctx, conn)
	if stop() {
		conn.Release()
		return err
	}
	// The connection was closed, perhaps after fn's last statement, so
	// that pgx does not know it yet: it must not go back to the pool.
	<-closed
	conn.Hijack().Close(context.Background())
	return err
}

// do runs op on backend b through its breaker and under the router's
// deadline (see call), with a span and a duration measurement.
func (s *Shard) do(ctx context.Context, op string, sc regions.Scope, b *backend, fn func(context.Context, *pgxpool.Conn) error) error {
	ctx, span := s.obs.tracer.Start(ctx, "shard."+op, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	if span.IsRecording() { // a sampled trace: most calls build no attributes
		span.SetAttributes(callLabels(s.name, op, b.role, sc.Region)...)
	}
	start := time.Now()
	var err error
	if b.enter() {
		_, err = b.breaker().Execute(func() (struct{}, error) { return struct{}{}, s.call(ctx, b.pool, fn) })
		b.inCalls.Add(-1)
		err = s.classify(err, sc)
	} else {
		err = fmt.Errorf("shard %s %s: %d calls in progress: %w", s.name, b.role, b.maxCalls, ErrOverloaded)
	}
	outcome := outcomeOf(err)
	end := time.Now()
	if outcome != "overloaded" { // the server did not see the call
		b.calls.record(end, end.Sub(start), outcome == "unavailable" || outcome == "timeout")
	}
	if fence := (*FenceError)(nil); errors.As(err, &fence) {
		s.obs.fenced.Add(ctx, 1, metric.WithAttributes(attribute.String("shard", s.name),
			attribute.String("region", string(sc.Region)), attribute.String("reason", fenceReason(fence.Err))))
	}
	s.obs.queryDuration.Record(ctx, end.Sub(start).Seconds(), s.obs.queryLabels(s.name, op, b.role, sc.Region, outcome))
	if err != nil {
		span.SetStatus(codes.Error, outcome)
		span.RecordError(err)
	}
	return err
}

// callLabels returns the labels of a shard call's span and measurement:
// the shard, the operation, the database role and, when the call is
// scoped to one, the region.
func callLabels(shard, op, role string, r regions.Code) []attribute.KeyValue {
	attrs := []attribute.KeyValue{attribute.String("shard", shard), attribute.String("op", op), attribute.String("db.role", role)}
	if r != "" {
		attrs = append(attrs, attribute.String("region", string(r)))
	}
	return attrs
}

// queryKey names a label set of the query duration histogram.
type queryKey struct {
	shard, op, role, outcome string
	region                   regions.Code
}

// queryLabels returns the measurement option of a call's labels (callLabels
// and the outcome), built once per combination: a label set sorts and
// copies its labels, which every call would otherwise pay for. Shards,
// operations, roles, regions and outcomes are bounded sets.
func (o *observer) queryLabels(shard, op, role string, r regions.Code, outcome string) metric.RecordOption {
	k := queryKey{shard: shard, op: op, role: role, outcome: outcome, region: r}
	if v, ok := o.labels.Load(k); ok {
		return v.(metric.RecordOption)
	}
	v := metric.WithAttributeSet(attribute.NewSet(append(callLabels(shard, op, role, r), attribute.String("outcome", outcome))...))
	o.labels.Store(k, v)
	return v
}

// enter counts a call in progress on b and reports whether it may run:
// false, counting nothing, when maxCalls are in progress.
func (b *backend) enter() bool {
	if b.inCalls.Add(1) > b.maxCalls && b.maxCalls > 0 {
		b.inCalls.Add(-1)
		return false
	}
	return true
}

func outcomeOf(err error) string {
	if errors.Is(err, ErrOverloaded) {
		return "overloaded"
	}
	switch err.(type) {
	case nil:
		return "ok"
	case *UnavailableError:
		return "unavailable"
	case *TimeoutError:
		return "timeout"
	case *FenceError:
		return "fenced"
	}
	return "error"
}

// fenceReason is the reason label of a fence refusal: "not_owned" or "frozen".
func fenceReason(err error) string {
	if errors.Is(err, ErrFrozen) {
		return "frozen"
	}
	return "not_owned"
}
