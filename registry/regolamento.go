package registry

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Regolamento is the part of a market's regolamento that the market-day
// rules follow, as it applies: the market's own values, or the national
// defaults (migration 00014, dms.regolamento) where it sets none.
type Regolamento struct {
	// RankingReset is NEVER (presences accumulate over the years) or
	// YEARLY (the graduatoria counts the calendar year's presences only).
	RankingReset string `json:"ranking_reset"`
	// RankingFrom is a one-off reset: presences before it do not count.
	RankingFrom *string `json:"ranking_from"`
	// TieBreaks order vendors with equal presences: REGISTRATION,
	// FIRST_PRESENCE, and always last DRAW.
	TieBreaks []string `json:"tie_breaks"`
	// Sectors says whether stalls are given by sector (alimentare, non
	// alimentare).
	Sectors  bool   `json:"sectors"`
	CallTime string `json:"call_time"` // HH:MM, Europe/Rome
	// AbsenceLimit is the regolamento's limit of unjustified absences per
	// year; nil: the national rule, four months of the year's market days.
	AbsenceLimit *int32 `json:"absence_limit"`
	// CurrentAbsenceLimit is the limit that applies in the current year
	// (Europe/Rome), AbsenceLimit or the national rule's number.
	CurrentAbsenceLimit int32 `json:"current_absence_limit"`
	// Own says whether the market has a regolamento of its own; false:
	// every value is the national default.
	// (The audit log, entity regolamento, says who changed it and when.)
	Own bool `json:"own"`
}

// regolamentoJSON returns the SQL expression of the regolamento of the
// market market (an SQL expression) as the JSON of a Regolamento.
func regolamentoJSON(market string) string {
	return `(SELECT jsonb_build_object(
		'ranking_reset', r.ranking_reset,
		'ranking_from', to_char(r.ranking_from, 'YYYY-MM-DD'),
		'tie_breaks', r.tie_breaks,
		'sectors', r.sectors,
		'call_time', to_char(r.call_time, 'HH24:MI'),
		'absence_limit', r.absence_limit,
		'current_absence_limit', dms.absence_limit(` + market + `, extract(year FROM now() AT TIME ZONE 'Europe/Rome')::integer),
		'own', x.market_id IS NOT NULL)
	FROM dms.regolamento(` + market + `) r LEFT JOIN market_regolamenti x ON x.market_id = ` + market + `)`
}

// RegolamentoPatch changes the values it sets; RankingFrom and
// AbsenceLimit may be set to nil (no one-off reset; the national rule).
// The router validates the values.
type RegolamentoPatch struct {
	RankingReset Field[string]
	RankingFrom  Field[*time.Time]
	TieBreaks    Field[[]string]
	Sectors      Field[bool]
	CallTime     Field[string] // HH:MM
	AbsenceLimit Field[*int32]
}

// The statements of UpdateRegolamento: upsertRegolamentoSQL writes the
// market's row, each value from the patch (@<column>, when @<column>_set)
// or as it applies now (its own row or the national default), and audits
// the change (entity regolamento, the market's id, before NULL when the
// market had no row); regolamentoSQL reads the result in the same
// transaction.
var (
	upsertRegolamentoSQL = named(`WITH mk AS (
		SELECT id, region_id, comune FROM markets WHERE id = @market AND region_id = @region
	), old AS (
		SELECT * FROM market_regolamenti WHERE market_id = @market
	), ups AS (
		INSERT INTO market_regolamenti AS t (market_id, region_id, comune, ranking_reset, ranking_from, tie_breaks, sectors, call_time, absence_limit)
		SELECT mk.id, mk.region_id, mk.comune,
			CASE WHEN @ranking_reset_set THEN @ranking_reset::text ELSE r.ranking_reset END,
			CASE WHEN @ranking_from_set THEN @ranking_from::date ELSE r.ranking_from END,
			CASE WHEN @tie_breaks_set THEN @tie_breaks::text[] ELSE r.tie_breaks END,
			CASE WHEN @sectors_set THEN @sectors::boolean ELSE r.sectors END,
			CASE WHEN @call_time_set THEN @call_time::time ELSE r.call_time END,
			CASE WHEN @absence_limit_set THEN @absence_limit::integer ELSE r.absence_limit END
		FROM mk CROSS JOIN dms.regolamento(mk.id) r
		ON CONFLICT (market_id) DO UPDATE SET ranking_reset = excluded.ranking_reset, ranking_from = excluded.ranking_from,
			tie_breaks = excluded.tie_breaks, sectors = excluded.sectors, call_time = excluded.call_time,
			absence_limit = excluded.absence_limit, updated_at = now()
		RETURNING t.*
	), ` + auditCTE("audit", "update", "regolamento", "n.market_id, to_jsonb(o), to_jsonb(n) FROM ups n LEFT JOIN old o ON o.market_id = n.market_id") + `
	SELECT count(*) FROM ups`)
	regolamentoSQL = named(`SELECT ` + regolamentoJSON("@market::bigint"))
)

// UpdateRegolamento applies p to the regolamento of market marketID in
// scope sc, creating the market's own row from the national defaults when
// it has none, with an audit row, and returns the regolamento as it now
// applies. A market not in scope is ErrNotFound. Which principals may
// change a regolamento is the router's to decide.
func UpdateRegolamento(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, marketID int64, p RegolamentoPatch) (Result[Regolamento], error) {
	a := writeArgs(sc, w, pgx.NamedArgs{"market": marketID,
		"ranking_reset_set": p.RankingReset.Set, "ranking_reset": p.RankingReset.V,
		"ranking_from_set": p.RankingFrom.Set, "ranking_from": p.RankingFrom.V,
		"tie_breaks_set": p.TieBreaks.Set, "tie_breaks": p.TieBreaks.V,
		"sectors_set": p.Sectors.Set, "sectors": p.Sectors.V,
		"call_time_set": p.CallTime.Set, "call_time": p.CallTime.V,
		"absence_limit_set": p.AbsenceLimit.Set, "absence_limit": p.AbsenceLimit.V})
	if !p.CallTime.Set {
		a["call_time"] = nil
	}
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Regolamento, bool, error) {
		var (
			n int
			r Regolamento
		)
		if err := upsertRegolamentoSQL.queryRow(ctx, tx, a).Scan(&n); err != nil {
			return r, false, err
		}
		if n == 0 {
			return r, false, ErrNotFound
		}
		err := regolamentoSQL.queryRow(ctx, tx, a).Scan(&r)
		return r, false, err
	})
}
