package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// MarketDay is one day of a market: held or cancelled (with the office's
// reason), and the time of its call (appello) once made. A day the office
// did not record is held once anyone checks in (Recorded false).
type MarketDay struct {
	MarketID  int64      `json:"market_id"`
	Date      string     `json:"date"`
	Status    string     `json:"status"` // HELD or CANCELLED
	Reason    string     `json:"reason"`
	CallAt    *time.Time `json:"call_at"`
	Recorded  bool       `json:"recorded"`
	UpdatedBy *string    `json:"updated_by"`
	// The presences recorded that day, by kind. A cancelled day keeps its
	// presences, but they count for nobody.
	ConcessionPresences int `json:"concession_presences"`
	SpuntaPresences     int `json:"spunta_presences"`
}

// MarketDayStatuses are the statuses of a market day.
var MarketDayStatuses = []string{"HELD", "CANCELLED"}

// marketDayJSON is market day d (the columns of market_days and recorded)
// as JSON, the way MarketDay decodes it, with its presences per kind from
// the presence_daily rollup.
const marketDayJSON = `json_build_object('market_id', d.market_id, 'date', to_char(d.date, 'YYYY-MM-DD'),
	'status', d.status, 'reason', d.reason,
	'call_at', to_char(d.call_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
	'recorded', d.recorded, 'updated_by', d.updated_by,
	'concession_presences', coalesce((SELECT sum(pd.n) FROM presence_daily pd
		WHERE pd.market_id = d.market_id AND pd.date = d.date AND pd.kind = 'CONCESSION'), 0),
	'spunta_presences', coalesce((SELECT sum(pd.n) FROM presence_daily pd
		WHERE pd.market_id = d.market_id AND pd.date = d.date AND pd.kind = 'SPUNTA'), 0))`

// listDaysSQL selects, as one JSON array, the days of market @market from
// @from to @to: the days the office recorded, and the days with presences
// and no record, which were held.
var listDaysSQL = named(`SELECT coalesce(json_agg(` + marketDayJSON + ` ORDER BY d.date), '[]') FROM (
	SELECT md.market_id, md.date, md.status, md.reason, md.call_at, true AS recorded, md.updated_by
	FROM market_days md
	WHERE md.market_id = @market AND md.region_id = @region AND md.date BETWEEN @from::date AND @to::date
	UNION ALL
	SELECT pd.market_id, pd.date, 'HELD', '', NULL, false, NULL
	FROM presence_daily pd
	WHERE pd.market_id = @market AND pd.region_id = @region AND pd.date BETWEEN @from::date AND @to::date
	GROUP BY pd.market_id, pd.date
	HAVING sum(pd.n) > 0 AND NOT EXISTS (
		SELECT FROM market_days md WHERE md.market_id = pd.market_id AND md.date = pd.date)
) d`)

// MaxDayRange is the longest span of days ListMarketDays lists at once.
const MaxDayRange = 366

// ListMarketDays returns the days of market marketID from first to last
// (inclusive, at most MaxDayRange days) in scope sc, in date order, or
// ErrNotFound when the market is not in scope.
func ListMarketDays(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, marketID int64, first, last time.Time) ([]MarketDay, error) {
	a := scopeArgs(sc)
	a["market"], a["from"], a["to"] = marketID, first, last
	var (
		found bool
		body  []byte
	)
	err := sh.Read(ctx, sc, func(b *pgx.Batch) {
		marketGuard.pick(a).queueFound(b, a, &found)
		listDaysSQL.queue(b, a).QueryRow(func(row pgx.Row) error { return row.Scan(&body) })
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrNotFound
	}
	var days []MarketDay
	if err := json.Unmarshal(body, &days); err != nil {
		return nil, fmt.Errorf("decode market days: %w", err)
	}
	return days, nil
}

// dayWriteSQL returns the statement of a write of market day @date of
// market @market: the CTEs mk (the market, when in scope) and old (the
// day's record, locked), then upsert, a CTE up over them that returns the
// written row (market_days.*), and more CTEs that may read up and old;
// the write is audited as action of entity market_day. It selects whether
// the market is in scope, the old record's status and call time, whether
// the day was recorded before, and the day written as JSON (NULL when
// nothing was).
func dayWriteSQL(action, upsert, more string) statement {
	return named(`WITH mk AS (
	SELECT id, region_id, comune FROM markets WHERE id = @market AND region_id = @region
), old AS (
	SELECT d.* FROM market_days d WHERE d.market_id = @market AND d.date = @date::date FOR UPDATE
), up AS (
	` + upsert + `
	RETURNING market_days.*
)` + more + `, ` + auditCTE("audit", action, "market_day", "n.market_id, to_jsonb(o), to_jsonb(n) FROM up n LEFT JOIN old o ON true") + `
SELECT EXISTS (SELECT FROM mk), (SELECT status FROM old), (SELECT call_at FROM old), EXISTS (SELECT FROM old),
	(SELECT ` + marketDayJSON + ` FROM (SELECT up.*, true AS recorded FROM up) d)`)
}

var (
	// setDaySQL records day @date of market @market as @status with
	// @reason; a cancelled day has no call.
	setDaySQL = dayWriteSQL("status", `INSERT INTO market_days (market_id, region_id, comune, date, status, reason, updated_by)
	SELECT mk.id, mk.region_id, mk.comune, @date, @status, @reason, @user FROM mk
	ON CONFLICT (market_id, date) DO UPDATE SET status = EXCLUDED.status, reason = EXCLUDED.reason,
		call_at = CASE WHEN EXCLUDED.status = 'HELD' THEN market_days.call_at END,
		updated_by = EXCLUDED.updated_by, updated_at = now()`, "")

	// appelloSQL records the call of day @date of market @market at @at,
	// unless the day is cancelled or its call was made, and marks LATE
	// the spuntisti who checked in after it before it was recorded (an
	// office may record at 08:30 the call made at 08:00).
	appelloSQL = dayWriteSQL("appello", `INSERT INTO market_days (market_id, region_id, comune, date, status, call_at, updated_by)
	SELECT mk.id, mk.region_id, mk.comune, @date, 'HELD', @at, @user FROM mk
	WHERE NOT EXISTS (SELECT FROM old WHERE old.status = 'CANCELLED' OR old.call_at IS NOT NULL)
	ON CONFLICT (market_id, date) DO UPDATE SET call_at = EXCLUDED.call_at,
		updated_by = EXCLUDED.updated_by, updated_at = now()
	WHERE market_days.status = 'HELD' AND market_days.call_at IS NULL`, `, late AS (
	UPDATE vendor_presences p SET outcome = 'LATE' FROM up
	WHERE p.market_id = up.market_id AND p.date = up.date AND p.region_id = @region
	  AND p.kind = 'SPUNTA' AND p.outcome IS NULL AND p.checkin_at > up.call_at
)`)
)

// dayWrite is what dayWriteSQL selects.
type dayWrite struct {
	marketOK  bool
	oldStatus *string
	oldCall   *time.Time
	existed   bool
	body      []byte
}

// run runs s with arguments a in tx and reads its row.
func (d *dayWrite) run(ctx context.Context, tx pgx.Tx, s statement, a pgx.NamedArgs) error {
	return s.queryRow(ctx, tx, a).Scan(&d.marketOK, &d.oldStatus, &d.oldCall, &d.existed, &d.body)
}

// day decodes the day written; none means a concurrent write of the same
// day won a race, and the transaction must run again.
func (d *dayWrite) day() (MarketDay, error) {
	var md MarketDay
	if d.body == nil {
		return md, errRetry
	}
	if err := json.Unmarshal(d.body, &md); err != nil {
		return md, fmt.Errorf("decode market day: %w", err)
	}
	return md, nil
}

// SetMarketDay records in scope sc that market marketID was (or will be)
// held or cancelled on day, with reason (required for CANCELLED, which
// the router checks), audited. Cancelling a day clears its call; the
// presences of a cancelled day stay recorded, but count for nobody. The
// result is created when the day had no record. A market not in scope is
// ErrNotFound.
func SetMarketDay(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, marketID int64, day time.Time, status, reason string) (Result[MarketDay], error) {
	a := writeArgs(sc, w, pgx.NamedArgs{"market": marketID, "date": day, "status": status, "reason": reason})
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (MarketDay, bool, error) {
		var d dayWrite
		if err := d.run(ctx, tx, setDaySQL, a); err != nil {
			return MarketDay{}, false, err
		}
		if !d.marketOK {
			return MarketDay{}, false, ErrNotFound
		}
		md, err := d.day()
		return md, !d.existed, err
	})
}

// RecordAppello records in scope sc the call (appello) of market marketID
// on day at time at, audited: from then on a spuntista's check-in is LATE,
// and so are those already recorded after at. A day without a record
// becomes HELD. A cancelled day is a *ConflictError with rule
// market-day-cancelled, a day whose call was made one with rule call-made;
// a market not in scope is ErrNotFound.
func RecordAppello(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, marketID int64, day, at time.Time) (Result[MarketDay], error) {
	a := writeArgs(sc, w, pgx.NamedArgs{"market": marketID, "date": day, "at": at})
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (MarketDay, bool, error) {
		var d dayWrite
		if err := d.run(ctx, tx, appelloSQL, a); err != nil {
			return MarketDay{}, false, err
		}
		date := day.Format(time.DateOnly)
		switch {
		case !d.marketOK:
			return MarketDay{}, false, ErrNotFound
		case d.oldStatus != nil && *d.oldStatus == "CANCELLED":
			return MarketDay{}, false, ruleConflict("market-day-cancelled", "the market day %s was cancelled: there is no call", date)
		case d.oldCall != nil:
			return MarketDay{}, false, ruleConflict("call-made", "the call of %s was made at %s", date, d.oldCall.UTC().Format(time.RFC3339))
		}
		md, err := d.day()
		return md, true, err
	})
}
