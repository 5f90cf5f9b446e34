package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// rankingCTE is a common table expression ranking that ranks the vendors of
// market @market by their presences of kind @kind from @from to @to
// (inclusive): more presences first, then the earlier first presence, then
// the lower vendor id. Only ATTIVA vendors are ranked: a SOSPESA or
// CESSATA vendor keeps its presences but has no place, and the vendors
// after it move up. For SPUNTA, holders of an ATTIVA concession in the
// market on day @ref are not spuntisti there and are left out.
const rankingCTE = `ranking AS (
	SELECT g.vendor_id, vd.denominazione, g.presences, g.first_presence,
		row_number() OVER (ORDER BY g.presences DESC, g.first_presence, g.vendor_id) AS rank
	FROM (
		SELECT p.vendor_id, count(*) AS presences, min(p.date) AS first_presence
		FROM vendor_presences p
		WHERE p.market_id = @market AND p.region_id = @region AND p.kind = @kind::text
		  AND p.date BETWEEN @from::date AND @to::date
		GROUP BY p.vendor_id
	) g
	JOIN vendors vd ON vd.id = g.vendor_id AND vd.region_id = @region AND vd.status = 'ATTIVA'
	WHERE @kind::text <> 'SPUNTA' OR NOT EXISTS (
		SELECT 1 FROM concessions c
		WHERE c.market_id = @market AND c.vendor_id = g.vendor_id AND c.status = 'ATTIVA'
		  AND @ref::date BETWEEN c.valid_from AND c.valid_to)
)`

// graduatoriaSQL reads a page (@limit, @offset) of the ranking,
// graduatoriaTotalSQL its length.
var (
	graduatoriaSQL = named(`WITH ` + rankingCTE + `
		SELECT r.rank, r.vendor_id, r.denominazione, r.presences,
			to_char(r.first_presence, 'YYYY-MM-DD') AS first_presence
		FROM ranking r
		ORDER BY r.rank LIMIT @limit OFFSET @offset`)
	graduatoriaTotalSQL = named(`WITH ` + rankingCTE + ` SELECT count(*) FROM ranking`)
)

// GraduatoriaEntry is one vendor's place in a market's ranking.
type GraduatoriaEntry struct {
	Rank          int64  `json:"rank" db:"rank"`
	VendorID      int64  `json:"vendor_id" db:"vendor_id"`
	Denominazione string `json:"denominazione" db:"denominazione"`
	Presences     int64  `json:"presences" db:"presences"`
	FirstPresence string `json:"first_presence" db:"first_presence"`
}

// Graduatoria is one page of a market's ranking for a year and a kind.
type Graduatoria struct {
	MarketID int64  `json:"market_id"`
	Year     int    `json:"year"`
	Kind     string `json:"kind"`
	List[GraduatoriaEntry]
}

// GetGraduatoria returns one page (by offset; the ranking has no cursor) of
// the ranking of market marketID in scope sc by presences of kind in year,
// counted up to today, or ErrNotFound when the market is not in scope.
func GetGraduatoria(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, marketID int64, year int, kind string, today time.Time, p Page) (Graduatoria, error) {
	out := Graduatoria{MarketID: marketID, Year: year, Kind: kind,
		List: List[GraduatoriaEntry]{Items: []GraduatoriaEntry{}, Limit: p.Limit, Offset: p.Offset}}
	from := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(year, 12, 31, 0, 0, 0, 0, time.UTC)
	if to.After(today) {
		to = today
	}
	a := scopeArgs(sc)
	for k, v := range (pgx.NamedArgs{"market": marketID, "kind": kind, "from": from, "to": to, "ref": to,
		"limit": p.Limit, "offset": p.Offset}) {
		a[k] = v
	}
	found := false
	err := sh.Read(ctx, sc, func(b *pgx.Batch) {
		marketGuard.pick(a).queue(b, a).Query(func(rows pgx.Rows) error {
			found = rows.Next()
			rows.Close()
			return rows.Err()
		})
		graduatoriaSQL.queue(b, a).Query(func(rows pgx.Rows) error {
			items, err := pgx.CollectRows(rows, pgx.RowToStructByName[GraduatoriaEntry])
			if items != nil {
				out.Items = items
			}
			return err
		})
		graduatoriaTotalSQL.queue(b, a).QueryRow(func(row pgx.Row) error {
			return row.Scan(&out.Total)
		})
	})
	if err != nil {
		return out, err
	}
	if !found {
		return out, ErrNotFound
	}
	return out, nil
}

// SpuntaAssignment is one present spuntista of a spunta, by rank, with the
// stall assigned (StallID 0 when none was left).
type SpuntaAssignment struct {
	Rank        int64  `json:"rank" db:"rank"`
	VendorID    int64  `json:"vendor_id" db:"vendor_id"`
	PresenceID  int64  `json:"presence_id" db:"presence_id"`
	StallID     *int64 `json:"stall_id" db:"stall_id"`
	StallNumber *int32 `json:"stall_number" db:"stall_number"`
}

// Spunta is the outcome of a market day's spunta.
type Spunta struct {
	MarketID int64              `json:"market_id"`
	Date     string             `json:"date"`
	RunBy    string             `json:"run_by"`
	Assigned int                `json:"assigned"`
	Ranking  []SpuntaAssignment `json:"ranking"`
	// AlreadyRun is true when the spunta of that day had run before: this
	// is its outcome, and nothing changed.
	AlreadyRun bool `json:"already_run"`
}

// The statements of RunSpunta (see writeArgs, rankingCTE, @comune, @day
// and @result): spuntaMarketSQL reads the market's comune; spuntaClaimSQL
// claims the market day's run, unless it ran already, and spuntaResultSQL
// reads the outcome of that run; spuntaAssignSQL assigns the free stalls to
// the present spuntisti by rank, audited, and selects the ranking;
// spuntaStoreSQL stores the outcome with the run.
var (
	spuntaMarketSQL = named(`SELECT comune FROM markets WHERE id = @market AND region_id = @region`)
	spuntaClaimSQL  = named(`INSERT INTO spunta_runs (region_id, market_id, comune, date, run_by, result)
		VALUES (@region, @market, @comune, @day, @user, 'null') ON CONFLICT DO NOTHING`)
	spuntaResultSQL = named(`SELECT result::text FROM spunta_runs WHERE market_id = @market AND date = @day`)
	spuntaAssignSQL = named(`WITH ` + rankingCTE + `, present AS (
		SELECT p.id AS presence_id, p.vendor_id, r.rank, row_number() OVER (ORDER BY r.rank) AS n
		FROM vendor_presences p JOIN ranking r ON r.vendor_id = p.vendor_id
		WHERE p.market_id = @market AND p.date = @day::date AND p.kind = 'SPUNTA' AND p.stall_id IS NULL
	), free AS (
		SELECT s.id AS stall_id, s.number AS stall_number, row_number() OVER (ORDER BY s.number) AS n
		FROM stalls s
		WHERE s.market_id = @market AND s.region_id = @region AND s.status <> 'RISERVATO'
		  AND NOT EXISTS (SELECT 1 FROM vendor_presences p
			WHERE p.market_id = @market AND p.date = @day::date AND p.stall_id = s.id)
	), pairs AS (
		SELECT present.presence_id, free.stall_id, free.stall_number FROM present JOIN free USING (n)
	), old_p AS (
		SELECT p.* FROM vendor_presences p JOIN pairs ON p.id = pairs.presence_id
		WHERE p.market_id = @market AND p.date = @day::date
	), upd_p AS (
		UPDATE vendor_presences p SET stall_id = pairs.stall_id FROM pairs
		WHERE p.id = pairs.presence_id AND p.market_id = @market AND p.date = @day::date
		RETURNING p.*
	), old_s AS (
		SELECT s.* FROM stalls s JOIN pairs ON s.id = pairs.stall_id WHERE s.status <> 'OCCUPATO'
	), upd_s AS (
		UPDATE stalls s SET status = 'OCCUPATO' FROM pairs WHERE s.id = pairs.stall_id AND s.status <> 'OCCUPATO'
		RETURNING s.*
	), ` + auditCTE("audit_p", "spunta", "presence", "n.id, to_jsonb(o), to_jsonb(n) FROM old_p o JOIN upd_p n ON n.id = o.id") + `,
	` + auditCTE("audit_s", "spunta", "stall", "n.id, to_jsonb(o), to_jsonb(n) FROM old_s o JOIN upd_s n ON n.id = o.id") + `
	SELECT present.rank, present.vendor_id, present.presence_id, pairs.stall_id, pairs.stall_number
	FROM present LEFT JOIN pairs USING (presence_id)
	ORDER BY present.rank`)
	spuntaStoreSQL = named(`WITH upd AS (
		UPDATE spunta_runs SET result = @result WHERE market_id = @market AND date = @day RETURNING *
	), ` + auditCTE("audit", "spunta", "market", "n.market_id, NULL, to_jsonb(n) FROM upd n") + `
	SELECT count(*) FROM upd`)
)

// RunSpunta runs the spunta of market marketID on day in scope sc, in one
// transaction: the stalls free that day (not riservato, with no presence
// on them) go, in order of stall number, to the present spuntisti without a
// stall, in order of their rank in the year's SPUNTA graduatoria up to that
// day (GetGraduatoria). Each assignment sets the presence's stall and marks
// the stall OCCUPATO, with an audit row each. A market day's spunta runs
// once: running it again returns the first outcome with AlreadyRun and
// changes nothing. A market not in scope is ErrNotFound.
func RunSpunta(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, marketID int64, day time.Time) (Result[Spunta], error) {
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Spunta, bool, error) {
		out := Spunta{MarketID: marketID, Date: day.Format(time.DateOnly), RunBy: w.Actor.User, Ranking: []SpuntaAssignment{}}
		a := writeArgs(sc, w, pgx.NamedArgs{"market": marketID, "kind": "SPUNTA", "from": time.Date(day.Year(), 1, 1, 0, 0, 0, 0, time.UTC),
			"to": day, "ref": day, "day": day})
		var comune string
		err := spuntaMarketSQL.queryRow(ctx, tx, a).Scan(&comune)
		if errors.Is(err, pgx.ErrNoRows) {
			return out, false, ErrNotFound
		}
		if err != nil {
			return out, false, err
		}
		a["comune"] = comune
		tag, err := spuntaClaimSQL.exec(ctx, tx, a)
		if err != nil {
			return out, false, err
		}
		if tag.RowsAffected() == 0 {
			var stored []byte
			if err := spuntaResultSQL.queryRow(ctx, tx, a).Scan(&stored); err != nil {
				return out, false, fmt.Errorf("read spunta run: %w", err)
			}
			if err := json.Unmarshal(stored, &out); err != nil {
				return out, false, fmt.Errorf("decode spunta run: %w", err)
			}
			out.AlreadyRun = true
			return out, false, nil
		}
		rows, err := spuntaAssignSQL.query(ctx, tx, a)
		if err != nil {
			return out, false, err
		}
		ranking, err := pgx.CollectRows(rows, pgx.RowToStructByName[SpuntaAssignment])
		if err != nil {
			return out, false, err
		}
		if ranking != nil {
			out.Ranking = ranking
		}
		for _, a := range out.Ranking {
			if a.StallID != nil {
				out.Assigned++
			}
		}
		result, err := marshal(out)
		if err != nil {
			return out, false, err
		}
		a["result"] = string(result)
		_, err = spuntaStoreSQL.exec(ctx, tx, a)
		return out, true, err
	})
}
