package registry

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// titleRankingCTE is a common table expression title_ranking that ranks the
// titles of market @market (in @region) by the CONCESSION presences earned
// under them from @from to @to (inclusive): the presences belong to the
// title, not to the person (D.Lgs. 114/1998 art. 29; a subingresso passes
// them to the buyer). A presence is the title's when a concession of the
// title (its vendor, its stall) was in its term that day, the latest such
// concession when terms overlap; a presence on a CANCELLED market day
// counts for nobody. A title is ranked when a concession of it, ATTIVA or
// SOSPESA and in its term on @ref, belongs to an ATTIVA vendor: its current
// holder, for whom it ranks; a holder with two titles ranks twice, each
// with its own presences. Titles without presences rank last, with 0.
//
// Its columns: rank, title_id, concession_id and vendor_id (the current
// holder's), denominazione, presences, first_presence (NULL without
// presences). Ties: the earlier first presence, then the title's id.
const titleRankingCTE = `title_presences AS (
	SELECT DISTINCT ON (p.id, p.date) k.title_id, p.date
	FROM vendor_presences p
	JOIN concessions k ON k.market_id = p.market_id AND k.vendor_id = p.vendor_id AND k.stall_id = p.stall_id
		AND p.date BETWEEN k.valid_from AND coalesce(k.extended_to, k.valid_to)
	WHERE p.market_id = @market AND p.region_id = @region AND p.kind = 'CONCESSION'
	  AND p.date BETWEEN @from::date AND @to::date
	  AND NOT EXISTS (SELECT FROM market_days d WHERE d.market_id = p.market_id AND d.date = p.date AND d.status = 'CANCELLED')
	ORDER BY p.id, p.date, k.valid_from DESC
), title_ranking AS (
	SELECT row_number() OVER (ORDER BY coalesce(g.presences, 0) DESC, g.first_presence NULLS LAST, c.title_id) AS rank,
		c.title_id, c.id AS concession_id, c.vendor_id, vd.denominazione, coalesce(g.presences, 0) AS presences,
		to_char(g.first_presence, 'YYYY-MM-DD') AS first_presence
	FROM concessions c
	JOIN vendors vd ON vd.id = c.vendor_id AND vd.region_id = @region AND vd.status = 'ATTIVA'
	LEFT JOIN (
		SELECT tp.title_id, count(*) AS presences, min(tp.date) AS first_presence FROM title_presences tp GROUP BY tp.title_id
	) g ON g.title_id = c.title_id
	WHERE c.market_id = @market AND c.region_id = @region AND c.status IN ('ATTIVA', 'SOSPESA')
	  AND @ref::date BETWEEN c.valid_from AND coalesce(c.extended_to, c.valid_to)
)`

// The statements of TitleRanking: a page (@limit, @offset) of the ranking
// and its length.
var (
	titleRankingSQL = named(`WITH ` + titleRankingCTE + `
		SELECT r.rank, r.title_id, r.concession_id, r.vendor_id, r.denominazione, r.presences, r.first_presence
		FROM title_ranking r ORDER BY r.rank LIMIT @limit OFFSET @offset`)
	titleRankingTotalSQL = named(`WITH ` + titleRankingCTE + ` SELECT count(*) FROM title_ranking`)
)

// TitleEntry is one title's place in a market's ranking of concession
// holders: the title, its current concession and holder, and the
// presences earned under the title by whoever held it.
type TitleEntry struct {
	Rank          int64   `json:"rank" db:"rank"`
	TitleID       int64   `json:"title_id" db:"title_id"`
	ConcessionID  int64   `json:"concession_id" db:"concession_id"`
	VendorID      int64   `json:"vendor_id" db:"vendor_id"`
	Denominazione string  `json:"denominazione" db:"denominazione"`
	Presences     int64   `json:"presences" db:"presences"`
	FirstPresence *string `json:"first_presence" db:"first_presence"`
}

// TitleRanking returns one page (by offset) of the ranking of market
// marketID's titles in scope sc by the CONCESSION presences earned under
// each from from to to inclusive, for the holders on day ref (see
// titleRankingCTE), or ErrNotFound when the market is not in scope. It is
// the graduatoria of kind CONCESSION: a subingresso's buyer ranks with the
// seller's presences under the title it bought, not with those of another
// title it holds.
func TitleRanking(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, marketID int64, from, to, ref time.Time, p Page) (List[TitleEntry], error) {
	out := List[TitleEntry]{Items: []TitleEntry{}, Limit: p.Limit, Offset: p.Offset}
	a := scopeArgs(sc)
	for k, v := range (pgx.NamedArgs{"market": marketID, "from": from, "to": to, "ref": ref, "limit": p.Limit, "offset": p.Offset}) {
		a[k] = v
	}
	found := false
	err := sh.Read(ctx, sc, func(b *pgx.Batch) {
		marketGuard.pick(a).queueFound(b, a, &found)
		titleRankingSQL.queue(b, a).Query(func(rows pgx.Rows) error {
			items, err := pgx.CollectRows(rows, pgx.RowToStructByName[TitleEntry])
			if items != nil {
				out.Items = items
			}
			return err
		})
		titleRankingTotalSQL.queue(b, a).QueryRow(func(row pgx.Row) error {
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
