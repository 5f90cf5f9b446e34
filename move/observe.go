package move

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Copy states of a table in a subscription (pg_subscription_rel.srsubstate),
// as TableProgress.State names them.
const (
	StateWaiting = "waiting" // i: initialising
	StateCopying = "copying" // d: the initial copy runs
	StateCopied  = "copied"  // f: copied, catching up with the stream
	StateSynced  = "synced"  // s: synchronised with the apply worker
	StateReady   = "ready"   // r: streamed by the apply worker
)

// substate names the state of pg_subscription_rel.srsubstate s.
func substate(s string) string {
	switch s {
	case "d":
		return StateCopying
	case "f":
		return StateCopied
	case "s":
		return StateSynced
	case "r":
		return StateReady
	}
	return StateWaiting
}

// TableProgress is the copy of one table: its state in the subscription,
// the rows copied so far and the region's rows on the source. Progress
// fills in Rate and ETA.
type TableProgress struct {
	Table  string `json:"table"`
	State  string `json:"state"`
	Copied int64  `json:"copied"`
	Total  int64  `json:"total"`
	// Rate is rows per second over the last updates; ETA the time left
	// at that rate (0 when unknown or done).
	Rate float64       `json:"rate"`
	ETA  time.Duration `json:"eta_ns"`
}

// Done reports whether the table's initial copy is over.
func (t TableProgress) Done() bool {
	return t.State == StateCopied || t.State == StateSynced || t.State == StateReady
}

// AllReady reports whether every table is streamed by the apply worker.
func AllReady(ts []TableProgress) bool {
	for _, t := range ts {
		if t.State != StateReady {
			return false
		}
	}
	return len(ts) > 0
}

// CopyProgress reports the copy of plan p's region into the target (dst),
// table by table in the order of Tables: the state of each table in the
// move's subscription (pg_subscription_rel), the rows its running copy has
// written (pg_stat_progress_copy; the total once the copy is over), and
// totals, the region's rows per table on the source. When totals is nil
// they are counted on src (RegionRows) on every call: a caller that polls
// counts them once and passes them in. A table the subscription does not
// list (yet) is StateWaiting.
func CopyProgress(ctx context.Context, src, dst *pgx.Conn, p Plan, totals map[string]int64) ([]TableProgress, error) {
	if totals == nil {
		var err error
		if totals, err = RegionRows(ctx, src, p.Region, nil); err != nil {
			return nil, err
		}
	}
	rows, err := dst.Query(ctx, `SELECT n.nspname || '.' || c.relname, sr.srsubstate::text,
	coalesce((SELECT sum(pc.tuples_processed) FROM pg_stat_progress_copy pc WHERE pc.relid = sr.srrelid), 0)::bigint
FROM pg_subscription s
JOIN pg_subscription_rel sr ON sr.srsubid = s.oid
JOIN pg_class c ON c.oid = sr.srrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, p.Names().Subscription)
	if err != nil {
		return nil, fmt.Errorf("move: copy progress: %w", err)
	}
	type rel struct {
		state  string
		copied int64
	}
	rels := map[string]rel{}
	var name, state string
	var copied int64
	_, err = pgx.ForEachRow(rows, []any{&name, &state, &copied}, func() error {
		rels[name] = rel{substate(state), copied}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("move: copy progress: %w", err)
	}
	out := make([]TableProgress, len(Tables))
	for i, t := range Tables {
		r, ok := rels[t.Name]
		tp := TableProgress{Table: t.Name, State: StateWaiting, Total: totals[t.Name]}
		if ok {
			tp.State, tp.Copied = r.state, r.copied
		}
		if tp.Done() {
			tp.Copied = tp.Total
		}
		tp.Copied = min(tp.Copied, tp.Total)
		out[i] = tp
	}
	return out, nil
}

// Lag is how far a subscriber is behind its publisher: the WAL bytes its
// slot has not confirmed, and the walsender's replay lag (0 when no
// walsender serves the slot, or when it is idle and caught up).
type Lag struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// ErrNoSlot is returned by ReplicationLag for a slot that does not exist.
var ErrNoSlot = errors.New("move: no such replication slot")

// ReplicationLag measures, on the publishing side (from), how far the
// subscriber of the logical replication slot named slot is behind:
// pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) bytes, and
// the replay_lag of the walsender using the slot in pg_stat_replication.
// It returns ErrNoSlot when there is no such slot.
func ReplicationLag(ctx context.Context, from *pgx.Conn, slot string) (Lag, error) {
	var l Lag
	err := from.QueryRow(ctx, `SELECT
	coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn), 0)::bigint,
	coalesce(extract(epoch FROM r.replay_lag), 0)::float8
FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_name = $1`, slot).Scan(&l.Bytes, &l.Seconds)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, fmt.Errorf("%w: %s", ErrNoSlot, slot)
	}
	if err != nil {
		return l, fmt.Errorf("move: lag of slot %s: %w", slot, err)
	}
	return l, nil
}

// Orphan is a replication object named like a move's (NamePrefix) that no
// move keeps.
type Orphan struct {
	// Kind is publication, slot or subscription.
	Kind string `json:"kind"`
	Name string `json:"name"`
}

func (o Orphan) String() string { return o.Kind + " " + o.Name }

// Orphans lists the publications, replication slots and subscriptions of
// conn's database whose names start with NamePrefix and for which keep
// returns false (keep is given each name; nil keeps none). Slots and
// subscriptions are the cluster's that belong to this database, so two
// shard databases on one server each list their own.
func Orphans(ctx context.Context, conn *pgx.Conn, keep func(name string) bool) ([]Orphan, error) {
	pattern := strings.ReplaceAll(NamePrefix, "_", `\_`) + "%"
	rows, err := conn.Query(ctx, `SELECT 'publication', pubname::text FROM pg_publication WHERE pubname LIKE $1
UNION ALL SELECT 'slot', slot_name::text FROM pg_replication_slots WHERE slot_name LIKE $1 AND database = current_database()
UNION ALL SELECT 'subscription', subname::text FROM pg_subscription
	WHERE subname LIKE $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY 1, 2`, pattern)
	if err != nil {
		return nil, fmt.Errorf("move: orphans: %w", err)
	}
	all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Orphan])
	if err != nil {
		return nil, fmt.Errorf("move: orphans: %w", err)
	}
	var out []Orphan
	for _, o := range all {
		if keep == nil || !keep(o.Name) {
			out = append(out, o)
		}
	}
	return out, nil
}
