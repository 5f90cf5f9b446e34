package shardmap

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sony/gobreaker/v2"
)

// DefaultMaxReplicaLag is the replica lag limit when max_replica_lag is 0.
const DefaultMaxReplicaLag = time.Second

// lagInterval is how often a shard's lag monitor measures its replicas: at
// most once a second per server, in the background, never per request.
const lagInterval = time.Second

// maxLagSamples bounds the primary's WAL positions a shard's lag monitor
// keeps (one per second at most): a replica behind all of them is reported
// as lagging by at least the age of the oldest, about an hour.
const maxLagSamples = 3600

// LSN is a position in a server's write-ahead log (PostgreSQL's pg_lsn).
type LSN uint64

// ParseLSN parses the text form of a pg_lsn, two hexadecimal numbers
// separated by a slash such as "16/B374D848".
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad WAL position %q", s)
	}
	return LSN(h<<32 | l), nil
}

// String returns the text form of a pg_lsn.
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xFFFFFFFF) }

// MarshalText returns the text form of a pg_lsn, so that JSON shows it as
// PostgreSQL does.
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// ReplicaLag is what the router last measured of one replica of a shard,
// for the status page and the dms.shard.replica.lag gauge.
type ReplicaLag struct {
	// Index is the replica's place in the shard's replicas list.
	Index int `json:"index"`
	// Lag is how long ago the primary first had WAL that the replica has
	// not replayed yet, as the router saw it: measured once a second, so it
	// may be up to a second below the true lag. 0 when it has replayed all.
	Lag time.Duration `json:"lag_ns"`
	// Replayed is the replica's last replayed WAL position.
	Replayed LSN `json:"replayed"`
	// MeasuredAt is when the router last measured the replica; zero before
	// its first measurement and after a failed one.
	MeasuredAt time.Time `json:"measured_at"`
	// Err is why the last measurement failed, "" when it did not.
	Err string `json:"error,omitempty"`
	// Readable reports whether the replica gets reads now: its breaker is
	// not open, and it was measured recently with a lag under the limit.
	Readable bool `json:"readable"`
}

// replicaLag is a replica's last measurement; the lag monitor replaces it
// whole, readers load it with one atomic load.
type replicaLag struct {
	lag      time.Duration
	replayed LSN
	at       time.Time
	err      error
}

// ReplicaLags returns the shard's replicas as the router last measured them.
func (s *Shard) ReplicaLags() []ReplicaLag {
	out := make([]ReplicaLag, 0, len(s.replicas))
	now := time.Now()
	for i, b := range s.replicas {
		r := ReplicaLag{Index: i, Readable: s.readable(b, 0, now)}
		if m := b.lag.Load(); m != nil {
			r.Lag, r.Replayed, r.MeasuredAt = m.lag, m.replayed, m.at
			if m.err != nil {
				r.Err, r.MeasuredAt = m.err.Error(), time.Time{}
			}
		}
		out = append(out, r)
	}
	return out
}

// readable reports whether replica b may serve a read now that must see
// the WAL position need (0: none): its breaker is not open, its last
// measurement succeeded within the last three intervals, its lag is under
// the limit, and it had replayed need when measured. A replica not yet
// measured, or one the monitor cannot reach, gets no reads: its lag is
// unknown. This is the whole per-read cost of the lag limit: an atomic
// load and a few comparisons, no statement.
func (s *Shard) readable(b *backend, need LSN, now time.Time) bool {
	m := b.lag.Load()
	return m != nil && m.err == nil && now.Sub(m.at) < 3*lagInterval &&
		m.lag < s.db.maxReplicaLag() && m.replayed >= need &&
		b.breaker().State() != gobreaker.StateOpen
}

// lagSample is a WAL position of the primary and when the router first saw it.
type lagSample struct {
	at  time.Time
	lsn LSN
}

// lagMonitor measures a shard's replicas: it is owned by one goroutine.
type lagMonitor struct {
	s       *Shard
	timeout time.Duration
	conns   map[*backend]*pgconn.PgConn // one connection per server, outside the pools
	samples []lagSample                 // the primary's positions, rising
	first   lagSample                   // the first position sampled, zero before
}

// watchLag measures the shard's replicas once every lagInterval until ctx
// is done, on a connection of its own to each server, so that a full pool
// never delays a measurement and a measurement never takes a request's
// connection.
func (s *Shard) watchLag(ctx context.Context) {
	m := &lagMonitor{s: s, timeout: min(lagInterval, s.db.ConnectTimeout), conns: map[*backend]*pgconn.PgConn{}}
	defer func() {
		for _, c := range m.conns {
			c.Close(context.Background())
		}
	}()
	tick := time.NewTicker(lagInterval)
	defer tick.Stop()
	for {
		m.measure(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// The statements of the lag monitor. A server that is not in recovery
// (the primary itself listed as a replica) reports where its own WAL is.
const (
	primaryLSNSQL  = `SELECT pg_current_wal_insert_lsn()::text`
	replayedLSNSQL = `SELECT (CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_replay_lsn(), '0/0')
		ELSE pg_current_wal_insert_lsn() END)::text`
)

// measure samples the primary's WAL position, then each replica's replayed
// position, and stores each replica's lag: the age of the earliest sample
// of the primary beyond what the replica replayed. While the primary
// cannot be reached, the samples already taken still give the lag.
func (m *lagMonitor) measure(ctx context.Context) {
	if lsn, err := m.position(ctx, m.s.primary, primaryLSNSQL); err == nil {
		if n := len(m.samples); n == 0 || lsn > m.samples[n-1].lsn {
			m.samples = append(m.samples, lagSample{at: time.Now(), lsn: lsn})
		}
		if m.first.at.IsZero() {
			m.first = m.samples[0]
		}
	}
	oldest := LSN(1<<64 - 1)
	for _, b := range m.s.replicas {
		lsn, err := m.position(ctx, b, replayedLSNSQL)
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		if err != nil {
			b.lag.Store(&replicaLag{at: now, err: err})
			continue
		}
		oldest = min(oldest, lsn)
		r := &replicaLag{replayed: lsn, at: now}
		// The earliest sample beyond lsn: the first the replica lacks.
		if i, _ := slices.BinarySearchFunc(m.samples, lsn+1, func(s lagSample, l LSN) int { return cmp.Compare(s.lsn, l) }); i < len(m.samples) {
			r.lag = now.Sub(m.samples[i].at)
		}
		if !m.first.at.IsZero() && lsn < m.first.lsn {
			// Behind the first position the router saw: behind for as
			// long as the router has watched at least, perhaps far longer,
			// so at the limit until it passes that position.
			r.lag = max(now.Sub(m.first.at), m.s.db.maxReplicaLag())
		}
		b.lag.Store(r)
	}
	// Samples every replica has replayed past are no replica's answer any
	// more; the newest is kept so that a new position is known to be new.
	for len(m.samples) > 1 && (m.samples[0].lsn <= oldest || len(m.samples) > maxLagSamples) {
		m.samples = m.samples[1:]
	}
}

// position runs sql, which returns a pg_lsn as text, on b's server over
// the monitor's connection to it, connecting first when it has none; a
// failed connection is closed and opened again at the next measurement.
func (m *lagMonitor) position(ctx context.Context, b *backend, sql string) (LSN, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	conn := m.conns[b]
	if conn == nil || conn.IsClosed() {
		var err error
		if conn, err = pgconn.ConnectConfig(ctx, b.lagConn); err != nil {
			return 0, err
		}
		m.conns[b] = conn
	}
	res := conn.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		conn.Close(context.Background())
		return 0, res.Err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return 0, errors.New("no WAL position in the answer")
	}
	return ParseLSN(string(res.Rows[0][0]))
}

// ConsistencyHeader is the HTTP header of read-your-writes: the answer to
// a write carries the WAL positions the request's writes committed at,
// and a request that sends it back reads from a replica only when that
// replica has replayed them (see Consistency).
const ConsistencyHeader = "DMS-Consistency"

// Consistency is one request's read-your-writes state: the WAL position
// per shard that its reads must see, from the DMS-Consistency header it
// brought and the writes it made. Put it in the request's context with
// WithConsistency; the shard calls read and update it. It is safe for
// concurrent use (a national read runs its legs at once).
type Consistency struct {
	mu    sync.Mutex
	need  map[string]LSN // shard -> position
	wrote bool
}

// ParseConsistency parses a DMS-Consistency header: comma-separated
// "<shard>:<WAL position>" items such as "s03:0/3000148". The empty header
// is an empty Consistency. A shard named twice keeps its later position.
func ParseConsistency(h string) (*Consistency, error) {
	c := &Consistency{need: map[string]LSN{}}
	if strings.TrimSpace(h) == "" {
		return c, nil
	}
	for item := range strings.SplitSeq(h, ",") {
		name, pos, ok := strings.Cut(strings.TrimSpace(item), ":")
		lsn, err := ParseLSN(pos)
		if !ok || !shardName.MatchString(name) || err != nil {
			return nil, fmt.Errorf("%q is not <shard>:<WAL position> (send back the header as a write's answer gave it)", item)
		}
		c.need[name] = lsn
	}
	if len(c.need) > 100 {
		return nil, errors.New("more than 100 positions")
	}
	return c, nil
}

// Wrote reports whether a write of the request recorded its position.
func (c *Consistency) Wrote() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wrote
}

// String returns the DMS-Consistency header of c: every shard's position,
// sorted by shard. A client that sends back the last one it got reads its
// writes on every shard it wrote to.
func (c *Consistency) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	items := make([]string, 0, len(c.need))
	for name, lsn := range c.need {
		items = append(items, name+":"+lsn.String())
	}
	slices.Sort(items)
	return strings.Join(items, ",")
}

// position returns the position the request's reads on shard must see, 0
// when none.
func (c *Consistency) position(shard string) LSN {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.need[shard]
}

// record records that a write on shard committed before lsn.
func (c *Consistency) record(shard string, lsn LSN) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.need[shard] = max(c.need[shard], lsn)
	c.wrote = true
}

// consistencyKey is the context key of WithConsistency.
type consistencyKey struct{}

// WithConsistency returns a context whose shard calls honour and update c:
// reads go to a replica only when it has replayed c's position on its
// shard, and writes on a shard with replicas record their commit's
// position in c.
func WithConsistency(ctx context.Context, c *Consistency) context.Context {
	return context.WithValue(ctx, consistencyKey{}, c)
}

// consistencyOf returns ctx's Consistency, nil when it has none.
func consistencyOf(ctx context.Context) *Consistency {
	c, _ := ctx.Value(consistencyKey{}).(*Consistency)
	return c
}
