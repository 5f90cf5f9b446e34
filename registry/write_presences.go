package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/migrations"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// CheckIn is one vendor's check-in at a market on a market day.
type CheckIn struct {
	MarketID int64
	VendorID int64
	StallID  *int64 // nil: the concession's stall, or no stall yet for a spuntista
	Kind     string // CONCESSION or SPUNTA
	Date     time.Time
	// CheckinAt is when the vendor checked in; Given says whether the
	// client set it, in which case an identical retry must match it.
	CheckinAt time.Time
	Given     bool
}

// The validation of a presence row, shared by a single check-in and a
// batch: the row r (columns market_id, vendor_id, stall_id, date, kind)
// joined with what rowCodeSQL judges it by.
const (
	// concessionOfRowSQL matches the concessions of r's vendor in its
	// market on its day that may matter: within the term up to its
	// effective end (a legal extension, extended_to, keeps a title
	// checking in after its printed valid_to), ATTIVA, or SCADUTA (the
	// term has since passed: a day within it is still the holder's, as
	// when yesterday's presences are sent after the lifecycle job ran), or
	// SOSPESA, REVOCATA or DECADUTA, which refuse the row.
	// concessionOrderSQL puts first the one that counts: on the given
	// stall, then one that holds it.
	concessionOfRowSQL = `c.vendor_id = r.vendor_id AND c.market_id = r.market_id
		AND r.date BETWEEN c.valid_from AND coalesce(c.extended_to, c.valid_to)
		AND c.status IN ('ATTIVA', 'SCADUTA', 'SOSPESA', 'REVOCATA', 'DECADUTA')`
	concessionOrderSQL = `c.stall_id = r.stall_id DESC NULLS LAST, c.status IN ('ATTIVA', 'SCADUTA') DESC, c.id`
	// rowConcessionSQL joins r with the concession that counts, c.
	rowConcessionSQL = `LEFT JOIN LATERAL (
		SELECT c.status, c.stall_id FROM concessions c WHERE ` + concessionOfRowSQL + `
		ORDER BY ` + concessionOrderSQL + ` LIMIT 1
	) c ON true`

	// rowColumnsSQL are the columns rowCodeSQL reads, but partition_ok,
	// with c the row's concession (NULL columns when none): its market's
	// comune, the market day's record (status, reason and the time of its
	// call, NULL when the day has no record), its vendor's state, its
	// stall's market, and the stall the row takes (for a CONCESSION row
	// without one, its concession's).
	rowColumnsSQL = `r.market_id, r.vendor_id, r.date, r.kind, r.stall_id AS given_stall,
		m.comune, m.id IS NOT NULL AS market_ok, md.status AS day_status, md.reason AS day_reason, md.call_at,
		vd.status AS vendor_status, sl.market_id AS stall_market,
		c.status AS conc_status, c.stall_id AS conc_stall,
		CASE WHEN r.kind = 'CONCESSION' THEN coalesce(r.stall_id, c.stall_id) ELSE r.stall_id END AS stall_id`
)

// rowJoinsSQL joins the row r of a check-in with its market, market day,
// vendor and stall in region @region (and in the scope, by row-level
// security), and its concession (rowConcessionSQL).
const rowJoinsSQL = `LEFT JOIN markets m ON m.id = r.market_id AND m.region_id = @region
	LEFT JOIN market_days md ON md.market_id = r.market_id AND md.date = r.date AND md.region_id = @region
	LEFT JOIN vendors vd ON vd.id = r.vendor_id AND vd.region_id = @region
	LEFT JOIN stalls sl ON sl.id = r.stall_id AND sl.region_id = @region
	` + rowConcessionSQL

// rowProbesSQL is rowJoinsSQL for the many rows r of a batch: each row's
// market, market day, vendor and stall is looked up by its key, as its
// concession is, in a LATERAL subquery that OFFSET 0 keeps the planner
// from turning back into a join. The login role's policies narrow these
// tables by province, comune and market (coalesce(<scope>, column)), which
// the planner cannot estimate: it expects one row of each in the region,
// and the generic plan, built once per connection for the size of its
// first batch, compared every row with every stall and market of the
// region in nested loops (41 million comparisons and 3.4-3.8 s for 2,000
// rows on Lombardia at full scale, three such statements for a batch that
// meets stored rows; five times as many rows compare five times as many
// pairs) where its first batch was small or the scope a comune's.
// Looked up by key the statement costs the same per row whatever the
// estimates: 54-58 ms for those 2,000 rows; where the joins' plan was
// lucky (hash joins, a whole region's batches), 46-80 ms more of the
// server's CPU per 10,000 rows, about a quarter more (BENCHMARKS.md, "The
// batch statement looks rows up by key"). The vendors' policy compares the
// region alone, which the planner estimates well, but a join's plan
// depends on it staying so; looked up, a vendor costs the same either way.
const rowProbesSQL = `LEFT JOIN LATERAL (SELECT m.id, m.comune FROM markets m
		WHERE m.id = r.market_id AND m.region_id = @region OFFSET 0) m ON true
	LEFT JOIN LATERAL (SELECT md.status, md.reason, md.call_at FROM market_days md
		WHERE md.market_id = r.market_id AND md.date = r.date AND md.region_id = @region OFFSET 0) md ON true
	LEFT JOIN LATERAL (SELECT vd.status FROM vendors vd
		WHERE vd.id = r.vendor_id AND vd.region_id = @region OFFSET 0) vd ON true
	LEFT JOIN LATERAL (SELECT sl.market_id FROM stalls sl
		WHERE sl.id = r.stall_id AND sl.region_id = @region OFFSET 0) sl ON true
	` + rowConcessionSQL

// outcomeSQL returns the outcome of a new presence of a row of v checked
// in at checkin: LATE for a spuntista after the day's call (appello),
// which is no presence for the ranking; else NULL (the spunta sets the
// outcome of those present at the call).
func outcomeSQL(checkin string) string {
	return `CASE WHEN kind = 'SPUNTA' AND call_at < ` + checkin + ` THEN 'LATE' END`
}

// presenceJSON is presence p as JSON, the way Presence decodes it, with
// times in UTC.
const presenceJSON = `json_build_object('id', p.id, 'region', lpad(p.region_id::text, 2, '0'),
	'market_id', p.market_id, 'vendor_id', p.vendor_id, 'stall_id', p.stall_id,
	'date', to_char(p.date, 'YYYY-MM-DD'), 'kind', p.kind,
	'checkin_at', to_char(p.checkin_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
	'checkout_at', to_char(p.checkout_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
	'outcome', p.outcome)`

// checkInStatement validates one check-in by the rules of a batch row (the
// row v, coded by rowCodeSQL) and, when it passes, records it with its
// audit row, unless the vendor or the stall has a presence that day already
// (ON CONFLICT DO NOTHING: a concurrent check-in of either is waited for).
// It selects the code and its detail, the stall the check-in takes, and the
// presence it recorded as JSON (NULL when none). extra is a further common
// table expression over out, the recorded presence, or "". The statement
// needs writeArgs and @market, @vendor, @stall, @date, @kind and @checkin.
func checkInStatement(extra string) string {
	return `WITH r AS (
	SELECT @market::bigint AS market_id, @vendor::bigint AS vendor_id, @stall::bigint AS stall_id,
		@date::date AS date, @kind::text AS kind
), s AS (
	SELECT ` + rowColumnsSQL + `,
		to_regclass('public.' || ` + migrations.PresencePartitionSQL("r.date") + `) IS NOT NULL AS partition_ok
	FROM r
	` + rowJoinsSQL + `
), v AS (
	SELECT s.*, ` + rowCodeSQL + ` AS code, ` + rowDetailSQL + ` AS detail FROM s
), ins AS (
	INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at, outcome)
	SELECT dms.next_id('vendor_presences', @region::smallint), @region, market_id, comune, vendor_id, stall_id,
		date, kind, @checkin, ` + outcomeSQL("@checkin::timestamptz") + `
	FROM v WHERE code IS NULL
	ON CONFLICT DO NOTHING
	RETURNING *
), ` + auditCTE("audit", "checkin", "presence", "n.id, NULL, to_jsonb(n) FROM ins n") + `,
out AS (
	SELECT ` + presenceJSON + ` AS body FROM ins p
)` + extra + `
SELECT v.code, v.detail, v.stall_id, (SELECT body FROM out) FROM v`
}

var (
	// checkInSQL is a check-in without an Idempotency-Key, run as the role
	// shardmap.RowWriter (Shard.BatchAsWriter).
	checkInSQL = named(checkInStatement(""))
	// checkInAsAppSQL is checkInSQL run as the login role, in the general
	// way of CheckInVendor. Its text differs so that it is a prepared
	// statement of its own: PostgreSQL plans a statement under row-level
	// security for one role, and plans it again when another runs it.
	checkInAsAppSQL = named(checkInStatement("") + "\n-- as the login role")
	// checkInKeptSQL is a check-in with an Idempotency-Key, which it stores
	// with the recorded presence; it fails with a unique violation when the
	// key is stored already or a concurrent request holds it (whose commit
	// it waits for). It also needs the arguments of keyArgs.
	checkInKeptSQL = named(checkInStatement(`, kept AS (
	INSERT INTO idempotency_keys (region_id, user_sub, role, territory, key, fingerprint, created, response)
	SELECT @region, @key_user, @key_role, @key_territory, @key, @fingerprint, true, body FROM out
)`))
)

// CheckInVendor records check-in in in scope sc. A CONCESSION check-in
// needs the vendor's concession in that market on that day, and takes its
// stall when none is given; a SPUNTA check-in is refused to a holder of an
// ATTIVA concession there. A holder whose concession is SOSPESA or REVOCATA,
// a vendor that is not ATTIVA, and a second check-in of the vendor or the
// stall that day are *ConflictError, except that a check-in identical to
// the one recorded (same vendor, kind, the stall and time when given)
// returns the recorded presence with Created false. The market not in scope
// is ErrNotFound; a vendor or stall not in scope a *MissingError.
//
// A new check-in, the common case, is one statement sent in one round
// trip with its scope and committed with it (Shard.BatchAsWriter), key
// included: the check-ins of one market day serialize on its rollup row,
// which each holds from its insert to its commit, so that time must not
// include a round trip to the router. It runs as the role
// shardmap.RowWriter, whose scope policies start no InitPlan per setting
// and table (23 of them as the login role). A check-in that meets a
// recorded presence or a stored Idempotency-Key goes the general way
// (write), which replays, refuses or answers with the recorded presence.
func CheckInVendor(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, in CheckIn) (Result[Presence], error) {
	args := writeArgs(sc, w, pgx.NamedArgs{"market": in.MarketID, "vendor": in.VendorID, "stall": in.StallID,
		"date": in.Date, "kind": in.Kind, "checkin": in.CheckinAt})
	stmt := checkInSQL
	if w.Key != "" {
		stmt = checkInKeptSQL
		args = keyArgs(sc, w, args)
	}
	var row checkInRow
	err := sh.BatchAsWriter(ctx, sc, func(b *pgx.Batch) {
		stmt.queue(b, args).QueryRow(row.scan)
	})
	switch {
	case isPgConstraint(err, "idempotency_keys_pkey") || isPgCode(err, "40001", "40P01"):
		// The key is stored or was being stored; or the race was lost.
	case err != nil:
		return Result[Presence]{}, mapError(err)
	case row.code != nil:
		return Result[Presence]{}, row.err()
	case row.body != nil:
		p, err := row.presence()
		return Result[Presence]{Value: p, Created: true}, err
	}
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Presence, bool, error) {
		var row checkInRow
		if err := row.scan(checkInAsAppSQL.queryRow(ctx, tx, args)); err != nil {
			return Presence{}, false, err
		}
		if row.code != nil {
			return Presence{}, false, row.err()
		}
		if row.body != nil {
			p, err := row.presence()
			return p, true, err
		}
		return recordedPresence(ctx, tx, in, row.stall)
	})
}

// checkInRow is what checkInSQL selects.
type checkInRow struct {
	code, detail *string
	stall        *int64
	body         []byte
}

func (r *checkInRow) scan(row pgx.Row) error { return row.Scan(&r.code, &r.detail, &r.stall, &r.body) }

// err is the error of the row's code: the batch row's reason, as a
// *ConflictError unless something named does not exist.
func (r *checkInRow) err() error {
	c := rowCode{Code: *r.code}
	if r.detail != nil {
		c.Detail = *r.detail
	}
	switch c.Code {
	case "market":
		return ErrNotFound
	case "vendor", "stall":
		return &MissingError{Field: c.rowError().Field}
	case "partition":
		return &InvalidError{Field: "checkin_at", Reason: "outside the stored range: no presences are kept for that month"}
	}
	e := c.rowError()
	return &ConflictError{Reason: e.Reason, Rule: e.Rule}
}

func (r *checkInRow) presence() (Presence, error) { return decodePresence(r.body) }

// decodePresence decodes a presence that presenceJSON encoded.
func decodePresence(b []byte) (Presence, error) {
	var p Presence
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode presence: %w", err)
	}
	return p, nil
}

// recordedPresenceSQL reads the presence of @vendor at @market on @date,
// else the one on @stall.
var recordedPresenceSQL = named(`SELECT ` + presenceJSON + ` FROM vendor_presences p
	WHERE p.market_id = @market AND p.date = @date AND (p.vendor_id = @vendor OR p.stall_id = @stall)
	ORDER BY p.vendor_id = @vendor DESC
	LIMIT 1`)

// recordedPresence answers check-in in, which takes stall, when it met a
// presence of its vendor or stall that day (perhaps one a concurrent
// request has just committed): the same check-in again is answered with
// it, anything else is a conflict.
func recordedPresence(ctx context.Context, tx pgx.Tx, in CheckIn, stall *int64) (Presence, bool, error) {
	rows, err := recordedPresenceSQL.query(ctx, tx, pgx.NamedArgs{"market": in.MarketID, "date": in.Date, "vendor": in.VendorID, "stall": stall})
	if err != nil {
		return Presence{}, false, err
	}
	body, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[[]byte])
	if errors.Is(err, pgx.ErrNoRows) {
		return Presence{}, false, errRetry // the conflicting row went away
	}
	if err != nil {
		return Presence{}, false, err
	}
	p, err := decodePresence(body)
	if err != nil {
		return p, false, err
	}
	if p.VendorID != in.VendorID {
		return Presence{}, false, conflict("the stall is already taken on %s", in.Date.Format(time.DateOnly))
	}
	if p.Kind != in.Kind || (in.StallID != nil && (p.StallID == nil || *p.StallID != *in.StallID)) ||
		(in.Given && !p.CheckinAt.Equal(in.CheckinAt)) {
		return Presence{}, false, conflict("the vendor has already checked in at this market on %s (presence %d)",
			in.Date.Format(time.DateOnly), p.ID)
	}
	return p, false, nil
}

// MaxBatchRows is the most rows IngestPresences takes in one call.
const MaxBatchRows = 10_000

// batchStatementTimeout bounds each statement of a bulk ingest, and
// batchQueryTimeout the router's wait for the whole ingest (see
// shardmap.WithQueryTimeout).
const (
	batchStatementTimeout = "30s"
	batchQueryTimeout     = 31 * time.Second
)

// PresenceRow is one row of a bulk presence ingest.
type PresenceRow struct {
	MarketID  int64
	VendorID  int64
	StallID   *int64
	Date      time.Time
	Kind      string
	CheckinAt *time.Time // nil: now on today, else the day's midnight in Rome
}

// BatchOutcome counts what a bulk ingest did with its rows.
type BatchOutcome struct {
	Rows      int `json:"rows"`
	Inserted  int `json:"inserted"`
	Duplicate int `json:"duplicate"` // already stored, or repeated within the batch
	Rejected  int `json:"rejected"`
}

// RowError says why one row of a batch was rejected. Row is its index in
// the batch, from 0; Rule names the market-day rule that refused it, as
// ConflictError.Rule does, when one did.
type RowError struct {
	Row    int    `json:"row"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
	Rule   string `json:"rule,omitempty"`
	// Earlier is the index of the earlier row of the batch that Reason
	// names ("row 3 has the same vendor ..."), else -1.
	Earlier int `json:"-"`
}

// RejectedError reports a batch that wrote nothing because some rows were
// rejected: the counts as they would have been, and why each row was refused.
type RejectedError struct {
	Outcome BatchOutcome
	Rows    []RowError
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("batch rejected: %d of %d rows", e.Outcome.Rejected, e.Outcome.Rows)
}

// batchSetupSQL opens a batch's transaction, before its rows are copied
// to the staging table (stagingSQL).
//
// One statement validates and writes up to 10,000 rows: more than the
// shard's per-statement timeout, sized for reads, may allow on a busy
// server, and a timeout would count against the breaker. Its plan is the
// generic one from the first run on a connection: the custom plans
// PostgreSQL makes for a prepared statement's first five runs were 2 to 7
// times slower, and slower as the table grew (BENCHMARKS.md, "The batch
// endpoint as JSON and CSV"), much of it JIT compilation, which the
// router's connections no longer do; without it they still cost more
// ("JIT").
const batchSetupSQL = `SET LOCAL statement_timeout = '` + batchStatementTimeout + `';
	SET LOCAL plan_cache_mode = force_generic_plan; ` + stagingSQL

// stagingSQL creates the session's staging table once per connection. Its
// rows last until the end of the transaction.
const stagingSQL = `CREATE TEMP TABLE IF NOT EXISTS presence_staging_v1 (
	row_no     integer NOT NULL,
	market_id  bigint NOT NULL,
	vendor_id  bigint NOT NULL,
	stall_id   bigint,
	date       date NOT NULL,
	kind       text NOT NULL,
	checkin_at timestamptz
) ON COMMIT DELETE ROWS`

// stagedSQL is the common table expression s over the staged rows: each
// row with what validating it needs (its market's comune, its vendor's
// state, its stall's market, the vendor's concession there that day, the
// one on the given stall first and an ATTIVA one before others, whether its
// month has a partition: all of them do when every month from @first to
// @last has one, the common case, checked once) and the stall it takes, for
// a CONCESSION row without one its concession's. Its statement needs
// @region, @first and @last (the batch's first and last days). Each row's
// records are looked up by key (rowProbesSQL): joined, they were read in
// plans whose cost grew with the region, not the batch (BENCHMARKS.md,
// "The batch statement's plan at full scale" and "The batch statement
// looks rows up by key").
var stagedSQL = `s AS (
	SELECT r.row_no, r.checkin_at AS given_checkin, ` + rowColumnsSQL + `,
		CASE WHEN (SELECT bool_and(to_regclass('public.' || ` + migrations.PresencePartitionSQL("mo") + `) IS NOT NULL)
				FROM generate_series(date_trunc('month', @first::date), @last::date, interval '1 month') mo)
			THEN true
			ELSE to_regclass('public.' || ` + migrations.PresencePartitionSQL("r.date") + `) IS NOT NULL
		END AS partition_ok
	FROM presence_staging_v1 r
	` + rowProbesSQL + `
)`

// rowCodeSQL is why a row of s is refused on its own, or NULL.
const rowCodeSQL = `CASE
	WHEN NOT market_ok THEN 'market'
	WHEN NOT partition_ok THEN 'partition'
	WHEN day_status = 'CANCELLED' THEN 'cancelled'
	WHEN vendor_status IS NULL THEN 'vendor'
	WHEN vendor_status <> 'ATTIVA' THEN 'vendor_state'
	WHEN given_stall IS NOT NULL AND stall_market IS DISTINCT FROM market_id THEN 'stall'
	WHEN conc_status IN ('SOSPESA', 'REVOCATA', 'DECADUTA') THEN 'suspended'
	WHEN kind = 'CONCESSION' AND conc_status IS NULL THEN 'no_concession'
	WHEN kind = 'CONCESSION' AND given_stall IS NOT NULL AND conc_stall <> given_stall THEN 'wrong_stall'
	WHEN kind = 'SPUNTA' AND conc_status IN ('ATTIVA', 'SCADUTA') THEN 'holder'
END`

// rowDetailSQL is the detail of rowCodeSQL's reason.
const rowDetailSQL = `CASE
	WHEN day_status = 'CANCELLED' THEN day_reason
	WHEN vendor_status <> 'ATTIVA' THEN vendor_status
	WHEN conc_status IN ('SOSPESA', 'REVOCATA', 'DECADUTA') THEN conc_status
	WHEN kind = 'CONCESSION' AND given_stall IS NOT NULL THEN conc_stall::text
	ELSE ''
END`

// classifySQL is the common table expression v over s: every row with a
// code, NULL for a row to insert, 'dup' for a row identical to an earlier
// row of the batch, or why the row is refused (with a detail): on its own
// (rowCodeSQL), or because an earlier row of the batch has the same vendor
// that day with other data, or another vendor on the same stall.
var classifySQL = stagedSQL + `, w AS (
	SELECT s.*,
		first_value(row_no) OVER wv AS v_row, first_value(stall_id) OVER wv AS v_stall,
		first_value(kind) OVER wv AS v_kind, first_value(given_checkin) OVER wv AS v_checkin,
		first_value(row_no) OVER ws AS s_row, first_value(vendor_id) OVER ws AS s_vendor
	FROM s
	WINDOW wv AS (PARTITION BY market_id, date, vendor_id ORDER BY row_no),
	       ws AS (PARTITION BY market_id, date, stall_id ORDER BY row_no)
), v AS (
	SELECT w.*, coalesce(` + rowCodeSQL + `, CASE
		WHEN v_row <> row_no AND (v_stall IS DISTINCT FROM stall_id OR v_kind <> kind
			OR v_checkin IS DISTINCT FROM given_checkin) THEN 'row_vendor'
		WHEN v_row <> row_no THEN 'dup'
		WHEN stall_id IS NOT NULL AND s_row <> row_no AND s_vendor <> vendor_id THEN 'row_stall'
	END) AS code,
	CASE WHEN ` + rowCodeSQL + ` IS NOT NULL THEN ` + rowDetailSQL + `
		WHEN v_row <> row_no THEN v_row::text
		WHEN s_row <> row_no THEN s_row::text
		ELSE '' END AS detail
	FROM w
)`

// insertSQL returns the end of an ingest statement over v: it inserts the
// rows of v whose code is NULL, unless some row is refused or guard (a
// condition) is false, with the insert's conflict clause onConflict, and
// selects how many it inserted, how many rows were to be inserted, how many
// were duplicates within the batch, and the refused rows as JSON. The
// statement needs @region, @today and @id_seq, the region's presence id
// sequence (migrations.IDSequence), which as an argument is resolved once
// per statement rather than once per row.
func insertSQL(guard, onConflict string) string {
	return `, ins AS (
	INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at, outcome)
	SELECT ` + regions.IDSQL("@region", "nextval(@id_seq::regclass)") + `, @region, market_id, comune, vendor_id, stall_id, date, kind,
		t.checkin, ` + outcomeSQL("t.checkin") + `
	FROM v
	CROSS JOIN LATERAL (SELECT coalesce(given_checkin,
		CASE WHEN date = @today::date THEN now() ELSE date::timestamp AT TIME ZONE 'Europe/Rome' END) AS checkin) t
	WHERE code IS NULL AND NOT EXISTS (SELECT 1 FROM v WHERE code IS NOT NULL AND code <> 'dup') AND ` + guard + `
	` + onConflict + `
	RETURNING 1
)
SELECT (SELECT count(*) FROM ins)::int, (SELECT count(*) FROM v WHERE code IS NULL)::int,
	(SELECT count(*) FROM v WHERE code = 'dup')::int,
	(SELECT coalesce(json_agg(json_build_object('row', row_no, 'code', code, 'detail', detail) ORDER BY row_no), '[]')
		FROM v WHERE code <> 'dup')`
}

// fastSQL is the common case of a batch: rows that are new and distinct.
// It checks each row on its own and inserts without a conflict clause
// (whose speculative insertion makes the insert about half again as
// slow), and only when no two rows take the same vendor or stall on a
// market day and no row meets a presence stored already: otherwise it
// inserts nothing, and the batch goes the careful way (slowSQL). A batch
// that repeats rows thus raises no unique violation, which the server
// would log with its whole statement; one remains possible only when a
// concurrent writer stores the same presence between the check and the
// insert. The stored presences it checks against are read once per
// distinct market day of the batch (stored: an index range scan each, the
// OFFSET 0 keeping it a nested loop over the few days rather than a scan
// of the table) and hash-joined with the rows: two index probes per row,
// each through the partitions' Append pruned anew, cost a fifth of the
// statement (BENCHMARKS.md, "The batch statement's freshness check").
var fastSQL = named(`WITH ` + stagedSQL + `, v AS (
	SELECT s.*, ` + rowCodeSQL + ` AS code, ` + rowDetailSQL + ` AS detail FROM s
), stored AS (
	SELECT p.market_id, p.date, p.vendor_id, p.stall_id
	FROM (SELECT DISTINCT market_id, date FROM v) d
	CROSS JOIN LATERAL (SELECT p.market_id, p.date, p.vendor_id, p.stall_id FROM vendor_presences p
		WHERE p.market_id = d.market_id AND p.date = d.date OFFSET 0) p
), fresh AS (
	SELECT NOT EXISTS (SELECT FROM v GROUP BY market_id, date, vendor_id HAVING count(*) > 1)
		AND NOT EXISTS (SELECT FROM v WHERE stall_id IS NOT NULL GROUP BY market_id, date, stall_id HAVING count(*) > 1)
		AND NOT EXISTS (SELECT FROM stored p JOIN v USING (market_id, date, vendor_id))
		AND NOT EXISTS (SELECT FROM stored p JOIN v USING (market_id, date, stall_id)) AS ok
)` + insertSQL("(SELECT ok FROM fresh)", ""))

// slowSQL classifies rows against each other too, and inserts with ON
// CONFLICT DO NOTHING: rows already stored, or stored meanwhile by a
// concurrent writer (the insert waits for it), are skipped, and
// conflictingRows sorts the skipped rows into duplicates and conflicts.
var slowSQL = named(`WITH ` + classifySQL + insertSQL("true", "ON CONFLICT DO NOTHING"))

// rowCodes turn the codes of classifySQL and of the conflict check into
// the field and reason of a RowError; %s is the code's detail.
var rowCodes = map[string]RowError{
	"market":        {Field: "market_id", Reason: "no such market in your territory"},
	"partition":     {Field: "date", Reason: "outside the stored range: no presences are kept for this month"},
	"cancelled":     {Field: "date", Reason: "the market day was cancelled (%s): it takes no presences", Rule: "market-day-cancelled"},
	"vendor":        {Field: "vendor_id", Reason: "no such vendor in the region"},
	"vendor_state":  {Field: "vendor_id", Reason: "the vendor is %s"},
	"stall":         {Field: "stall_id", Reason: "no such stall in this market"},
	"suspended":     {Field: "vendor_id", Reason: "the vendor's concession in this market is %s"},
	"no_concession": {Field: "vendor_id", Reason: "the vendor holds no concession in this market on this day"},
	"wrong_stall":   {Field: "stall_id", Reason: "the vendor's concession is for stall %s"},
	"holder":        {Field: "kind", Reason: "the vendor holds an ATTIVA concession in this market: a holder is not a spuntista there"},
	"row_vendor":    {Field: "vendor_id", Reason: "row %s has the same vendor, market and day with different data"},
	"row_stall":     {Field: "stall_id", Reason: "row %s takes the same stall on the same day"},
	"vendor_taken":  {Field: "vendor_id", Reason: "the vendor already has a different presence on this day (presence %s)"},
	"stall_taken":   {Field: "stall_id", Reason: "the stall is already taken on this day"},
}

// rowCode is one classified row, as the ingest statements return them.
type rowCode struct {
	Row    int    `json:"row"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

func (c rowCode) rowError() RowError {
	e, ok := rowCodes[c.Code]
	if !ok {
		e = RowError{Field: "row", Reason: c.Code}
	}
	e.Row, e.Earlier = c.Row, -1
	if c.Code == "row_vendor" || c.Code == "row_stall" {
		e.Earlier, _ = strconv.Atoi(c.Detail)
	}
	if strings.Contains(e.Reason, "%s") {
		e.Reason = fmt.Sprintf(e.Reason, c.Detail)
	}
	return e
}

// IngestPresences writes rows (at most MaxBatchRows, all of region sc.Region)
// in one transaction: all of them or none. The rows are COPYed into a
// temporary staging table and moved with one validated INSERT ... SELECT:
// markets, vendors and stalls must exist in scope, CONCESSION rows need the
// vendor's concession (SOSPESA and REVOCATA holders are refused), SPUNTA rows
// are refused to ATTIVA holders. Rows identical to a presence already stored,
// or to an earlier row of the batch, count as duplicates and are not written
// again, so a retried batch writes nothing twice. Any refused row makes the
// whole batch a *RejectedError, with the reason of each refused row. today
// is the current day in Europe/Rome.
//
// New, distinct rows, the common case, go through fastSQL; a batch that
// meets stored presences or repeats a row, which fastSQL does not insert,
// goes on through slowSQL and conflictingRows in the same transaction,
// which sort its rows into inserted, duplicate and refused. A duplicate is
// no error, in the response or in the server's log. In a race with a
// concurrent writer fastSQL fails with a unique violation, and the whole
// transaction runs again (no savepoint: its two round trips are saved on
// every batch).
func IngestPresences(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, rows []PresenceRow, today time.Time) (Result[BatchOutcome], error) {
	if len(rows) == 0 || len(rows) > MaxBatchRows {
		return Result[BatchOutcome]{}, fmt.Errorf("ingest presences: %d rows, want 1 to %d", len(rows), MaxBatchRows)
	}
	first, last := rows[0].Date, rows[0].Date
	for _, r := range rows {
		if r.Date.Before(first) {
			first = r.Date
		}
		if r.Date.After(last) {
			last = r.Date
		}
	}
	ctx = shardmap.WithQueryTimeout(ctx, batchQueryTimeout)
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (BatchOutcome, bool, error) {
		out := BatchOutcome{Rows: len(rows)}
		if _, err := tx.Exec(ctx, batchSetupSQL); err != nil {
			return out, false, err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"presence_staging_v1"},
			[]string{"row_no", "market_id", "vendor_id", "stall_id", "date", "kind", "checkin_at"},
			pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
				r := rows[i]
				return []any{int32(i), r.MarketID, r.VendorID, r.StallID, r.Date, r.Kind, r.CheckinAt}, nil
			}))
		if err != nil {
			return out, false, fmt.Errorf("copy to staging: %w", err)
		}
		var (
			eligible int
			rejected []byte
		)
		args := pgx.NamedArgs{"region": int16(sc.Region.Num()), "today": today, "first": first, "last": last,
			"id_seq": migrations.IDSequence("vendor_presences", sc.Region), "user": w.Actor.User, "role": w.Actor.Role}
		err = fastSQL.queryRow(ctx, tx, args).Scan(&out.Inserted, &eligible, &out.Duplicate, &rejected)
		if isPgCode(err, "23505") {
			// A concurrent writer stored a row first: run again, when
			// fastSQL sees the row and leaves the batch to slowSQL.
			return out, false, errRetry
		}
		if err != nil {
			return out, false, err
		}
		codes, err := decodeCodes(rejected)
		if err != nil {
			return out, false, err
		}
		if len(codes) == 0 && out.Inserted < eligible {
			// Some row met a stored presence or repeated another, and
			// fastSQL inserted nothing: sort the rows out.
			if err := slowSQL.queryRow(ctx, tx, args).Scan(&out.Inserted, &eligible, &out.Duplicate, &rejected); err != nil {
				return out, false, err
			}
			if codes, err = decodeCodes(rejected); err != nil {
				return out, false, err
			}
		}
		if len(codes) == 0 && out.Inserted < eligible {
			// Some rows met a presence already stored (perhaps by a
			// concurrent batch, which the insert waited for): identical
			// ones are duplicates, any other refuses the batch.
			if codes, err = conflictingRows(ctx, tx, args); err != nil {
				return out, false, err
			}
			out.Duplicate += eligible - out.Inserted - len(codes)
		}
		if len(codes) > 0 {
			out.Rejected = len(codes)
			e := &RejectedError{Outcome: out}
			e.Outcome.Inserted = 0
			for _, c := range codes {
				e.Rows = append(e.Rows, c.rowError())
			}
			return out, false, e
		}
		after, err := json.Marshal(out)
		if err != nil {
			return out, false, err
		}
		args["outcome"] = string(after)
		_, err = batchAuditSQL.exec(ctx, tx, args)
		return out, out.Inserted > 0, err
	})
}

// batchAuditSQL records a batch's audit row, its @outcome.
var batchAuditSQL = named(`INSERT INTO audit_log (id, region_id, user_sub, role, action, entity, entity_id, before, after)
	VALUES (dms.next_id('audit_log', @region::smallint), @region, @user, @role, 'batch', 'presence', NULL, NULL, @outcome)`)

func decodeCodes(b []byte) ([]rowCode, error) {
	var codes []rowCode
	if err := json.Unmarshal(b, &codes); err != nil {
		return nil, fmt.Errorf("decode rejected rows: %w", err)
	}
	return codes, nil
}

// conflictingRowsSQL selects the rows of conflictingRows as JSON.
var conflictingRowsSQL = named(`WITH ` + classifySQL + `
	SELECT coalesce(json_agg(json_build_object('row', v.row_no,
			'code', CASE WHEN ev.id IS NULL THEN 'stall_taken' ELSE 'vendor_taken' END,
			'detail', coalesce(ev.id::text, '')) ORDER BY v.row_no), '[]')
	FROM v
	LEFT JOIN LATERAL (
		SELECT p.id, p.stall_id, p.kind, p.checkin_at FROM vendor_presences p
		WHERE p.market_id = v.market_id AND p.date = v.date AND p.vendor_id = v.vendor_id
	) ev ON true
	WHERE v.code IS NULL AND (ev.id IS NULL OR ev.kind <> v.kind
		OR (v.given_stall IS NOT NULL AND ev.stall_id IS DISTINCT FROM v.given_stall)
		OR (v.given_checkin IS NOT NULL AND ev.checkin_at <> v.given_checkin))`)

// conflictingRows returns the staged rows to be inserted that met a
// different presence already stored: the vendor's presence that day
// differs (same rule as a single check-in), or another vendor holds the
// stall. Rows this transaction inserted are identical to themselves.
func conflictingRows(ctx context.Context, tx pgx.Tx, args pgx.NamedArgs) ([]rowCode, error) {
	var b []byte
	err := conflictingRowsSQL.queryRow(ctx, tx, args).Scan(&b)
	if err != nil {
		return nil, err
	}
	return decodeCodes(b)
}
