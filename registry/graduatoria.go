package registry

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// The CONCESSION graduatoria: the holders' own ranking by their presences
// of a calendar year. It is kept as it was before issue 13; the concession
// lifecycle (subingresso) replaces it with the ranking of titles, here.

// concessionRankingCTE is a common table expression ranking that ranks the
// vendors of market @market by their CONCESSION presences from @from to @to
// (inclusive): more presences first, then the earlier first presence, then
// the lower vendor id. Only ATTIVA vendors are ranked.
const concessionRankingCTE = `ranking AS (
	SELECT g.vendor_id, vd.denominazione, g.presences, g.first_presence,
		row_number() OVER (ORDER BY g.presences DESC, g.first_presence, g.vendor_id) AS rank
	FROM (
		SELECT p.vendor_id, count(*) AS presences, min(p.date) AS first_presence
		FROM vendor_presences p
		WHERE p.market_id = @market AND p.region_id = @region AND p.kind = 'CONCESSION'
		  AND p.date BETWEEN @from::date AND @to::date
		GROUP BY p.vendor_id
	) g
	JOIN vendors vd ON vd.id = g.vendor_id AND vd.region_id = @region AND vd.status = 'ATTIVA'
)`

// concessionGraduatoriaSQL reads a page (@limit, @offset) of the ranking,
// concessionGraduatoriaTotalSQL its length.
var (
	concessionGraduatoriaSQL = named(`WITH ` + concessionRankingCTE + `
		SELECT r.rank, r.vendor_id, r.denominazione, r.presences,
			to_char(r.first_presence, 'YYYY-MM-DD') AS first_presence
		FROM ranking r
		ORDER BY r.rank LIMIT @limit OFFSET @offset`)
	concessionGraduatoriaTotalSQL = named(`WITH ` + concessionRankingCTE + ` SELECT count(*) FROM ranking`)
)

// concessionEntry is a row of concessionGraduatoriaSQL.
type concessionEntry struct {
	Rank          int64   `db:"rank"`
	VendorID      int64   `db:"vendor_id"`
	Denominazione string  `db:"denominazione"`
	Presences     int64   `db:"presences"`
	FirstPresence *string `db:"first_presence"`
}

// getConcessionGraduatoria is GetGraduatoria of kind CONCESSION: the
// presences of q.Year counted up to q.Date.
func getConcessionGraduatoria(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, marketID int64, q GraduatoriaQuery, p Page) (Graduatoria, error) {
	out := Graduatoria{MarketID: marketID, Year: q.Year, Date: q.Date.Format(time.DateOnly), Kind: q.Kind,
		List: List[GraduatoriaEntry]{Items: []GraduatoriaEntry{}, Limit: p.Limit, Offset: p.Offset}}
	from := time.Date(q.Year, 1, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(q.Year, 12, 31, 0, 0, 0, 0, time.UTC)
	if to.After(q.Date) {
		to = q.Date
	}
	a := scopeArgs(sc)
	for k, v := range (pgx.NamedArgs{"market": marketID, "from": from, "to": to, "limit": p.Limit, "offset": p.Offset}) {
		a[k] = v
	}
	found := false
	err := sh.Read(ctx, sc, func(b *pgx.Batch) {
		marketGuard.pick(a).queue(b, a).Query(func(rows pgx.Rows) error {
			found = rows.Next()
			rows.Close()
			return rows.Err()
		})
		concessionGraduatoriaSQL.queue(b, a).Query(func(rows pgx.Rows) error {
			items, err := pgx.CollectRows(rows, pgx.RowToStructByName[concessionEntry])
			for _, e := range items {
				out.Items = append(out.Items, GraduatoriaEntry{Rank: e.Rank, VendorID: e.VendorID,
					Denominazione: e.Denominazione, Presences: e.Presences, FirstPresence: e.FirstPresence})
			}
			return err
		})
		concessionGraduatoriaTotalSQL.queue(b, a).QueryRow(func(row pgx.Row) error {
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
