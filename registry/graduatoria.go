package registry

import (
	"context"
	"time"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// getConcessionGraduatoria is GetGraduatoria of kind CONCESSION: the
// holders' ranking by the presences of q.Year (counted up to q.Date)
// earned under their titles (TitleRanking), so that a subingresso's buyer
// ranks with the presences of the title it bought. Each entry carries its
// title and concession.
func getConcessionGraduatoria(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, marketID int64, q GraduatoriaQuery, p Page) (Graduatoria, error) {
	out := Graduatoria{MarketID: marketID, Year: q.Year, Date: q.Date.Format(time.DateOnly), Kind: q.Kind,
		List: List[GraduatoriaEntry]{Items: []GraduatoriaEntry{}, Limit: p.Limit, Offset: p.Offset}}
	from := time.Date(q.Year, 1, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(q.Year, 12, 31, 0, 0, 0, 0, time.UTC)
	if to.After(q.Date) {
		to = q.Date
	}
	titles, err := TitleRanking(ctx, sh, sc, marketID, from, to, to, p)
	if err != nil {
		return out, err
	}
	out.Total = titles.Total
	for _, t := range titles.Items {
		out.Items = append(out.Items, GraduatoriaEntry{Rank: t.Rank, VendorID: t.VendorID, Denominazione: t.Denominazione,
			Presences: t.Presences, FirstPresence: t.FirstPresence, TitleID: &t.TitleID, ConcessionID: &t.ConcessionID})
	}
	return out, nil
}
