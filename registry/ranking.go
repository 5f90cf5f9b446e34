package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Sectors of stalls, authorisations and concessions, in the order the
// spunta calls them.
var sectorOrder = []string{"ALIMENTARE", "NON_ALIMENTARE"}

// Tie-breaks of a regolamento, after the presences (market_regolamenti).
const (
	tieRegistration  = "REGISTRATION"
	tieFirstPresence = "FIRST_PRESENCE"
	tieDraw          = "DRAW"
)

// spuntaRankingSQL ranks the spuntisti of market @market as the law does
// (D.Lgs. 114/1998 art. 28; Intesa Stato-Regioni 5-7-2012): by the SPUNTA
// presences they earned at the market from the regolamento's start
// (ranking_from, and 1 January of @day's year when it resets YEARLY) to
// @to inclusive, on days not CANCELLED, that earned something (not REFUSED,
// not LATE); then by the regolamento's tie-breaks in order (REGISTRATION:
// the earlier registro imprese date, FIRST_PRESENCE: the earlier first
// presence, unknown dates last); then by the draw, the hex of
// sha256(seed || ':' || vendor id), where the seed is @seed or, when
// NULL, the seed of the market's last spunta up to @day. Only ATTIVA vendors are ranked, not
// holding an ATTIVA or SOSPESA concession at the market on @day; where the
// regolamento applies sectors, one ranking per sector, of the vendors
// authorised in it, else one ranking (sector ”). With @present, the
// spuntisti present at the call of @day (checked in by the call, or at
// all when no call is recorded, without a stall and not LATE) are ranked
// too, with no presences when they have none, and carry their presence.
// One scan of the presences gives both (MATERIALIZED: once, whatever the
// estimates of a market's first days say, not once per vendor).
var spuntaRankingSQL = named(`WITH reg AS (SELECT * FROM dms.regolamento(@market)),
	since AS (
		SELECT greatest(coalesce(r.ranking_from, '2000-01-01'::date),
			CASE WHEN r.ranking_reset = 'YEARLY' THEN date_trunc('year', @day::date)::date ELSE '2000-01-01'::date END) AS d
		FROM reg r
	), call AS (
		SELECT coalesce((SELECT md.call_at FROM market_days md WHERE md.market_id = @market AND md.date = @day::date), 'infinity') AS at
	), candidates AS MATERIALIZED (
		SELECT p.vendor_id,
			count(*) FILTER (WHERE p.date <= @to::date AND p.outcome IS DISTINCT FROM 'REFUSED' AND p.outcome IS DISTINCT FROM 'LATE') AS presences,
			min(p.date) FILTER (WHERE p.date <= @to::date AND p.outcome IS DISTINCT FROM 'REFUSED' AND p.outcome IS DISTINCT FROM 'LATE') AS first_presence,
			max(p.id) FILTER (WHERE p.date = @day::date AND p.stall_id IS NULL AND p.outcome IS DISTINCT FROM 'LATE'
				AND p.checkin_at <= (SELECT at FROM call)) AS presence_id
		FROM vendor_presences p
		WHERE p.market_id = @market AND p.region_id = @region AND p.kind = 'SPUNTA'
		  AND p.date >= (SELECT d FROM since)
		  AND p.date <= CASE WHEN @present::boolean THEN @day::date ELSE @to::date END
		  AND NOT EXISTS (SELECT FROM market_days md
			WHERE md.market_id = @market AND md.date = p.date AND md.status = 'CANCELLED')
		GROUP BY p.vendor_id
	), draw AS (
		SELECT coalesce(@seed::text, (` + graduatoriaSeed + `), '') AS seed
	), sectors AS (
		SELECT unnest(CASE WHEN r.sectors THEN ARRAY['ALIMENTARE', 'NON_ALIMENTARE'] ELSE ARRAY[''] END) AS sector FROM reg r
	), ranked AS (
		SELECT s.sector, c.vendor_id, v.denominazione, c.presences, c.first_presence, v.registered_on,
			v.categories, c.presence_id,
			encode(sha256(convert_to((SELECT seed FROM draw) || ':' || c.vendor_id::text, 'UTF8')), 'hex') AS draw_key
		FROM candidates c
		JOIN vendors v ON v.id = c.vendor_id AND v.region_id = @region AND v.status = 'ATTIVA'
		CROSS JOIN sectors s
		WHERE (c.presences > 0 OR c.presence_id IS NOT NULL)
		  AND (s.sector = '' OR EXISTS (SELECT FROM authorisations a
			WHERE a.vendor_id = c.vendor_id AND a.region_id = @region AND a.sector = s.sector))
		  AND NOT EXISTS (SELECT FROM concessions k
			WHERE k.market_id = @market AND k.vendor_id = c.vendor_id AND k.status IN ('ATTIVA', 'SOSPESA')
			  AND @day::date BETWEEN k.valid_from AND coalesce(k.extended_to, k.valid_to))
	)
	SELECT r.sector, row_number() OVER (PARTITION BY r.sector ORDER BY r.presences DESC,
			(CASE g.tb[1] WHEN 'REGISTRATION' THEN r.registered_on WHEN 'FIRST_PRESENCE' THEN r.first_presence END) NULLS LAST,
			(CASE g.tb[2] WHEN 'REGISTRATION' THEN r.registered_on WHEN 'FIRST_PRESENCE' THEN r.first_presence END) NULLS LAST,
			(CASE g.tb[3] WHEN 'REGISTRATION' THEN r.registered_on WHEN 'FIRST_PRESENCE' THEN r.first_presence END) NULLS LAST,
			r.draw_key) AS rank,
		r.vendor_id, r.denominazione, r.presences,
		to_char(r.first_presence, 'YYYY-MM-DD') AS first_presence,
		to_char(r.registered_on, 'YYYY-MM-DD') AS registered_on,
		r.categories, r.presence_id, r.draw_key
	FROM ranked r CROSS JOIN (SELECT tie_breaks AS tb FROM reg) g
	ORDER BY r.sector, rank`)

// rankingOptionsSQL reads the options of market @market's regolamento that
// the ranking and the call use.
var rankingOptionsSQL = named(`SELECT r.sectors, r.tie_breaks FROM dms.regolamento(@market) r`)

// RankEntry is one vendor's place in a market's spunta ranking of one
// sector (Sector is empty where the regolamento applies no sectors).
type RankEntry struct {
	Sector        string  `json:"sector,omitempty" db:"sector"`
	Rank          int64   `json:"rank" db:"rank"`
	VendorID      int64   `json:"vendor_id" db:"vendor_id"`
	Denominazione string  `json:"denominazione" db:"denominazione"`
	Presences     int64   `json:"presences" db:"presences"`
	FirstPresence *string `json:"first_presence" db:"first_presence"`
	RegisteredOn  *string `json:"registered_on" db:"registered_on"`
	// TieBreak names the rule that placed the vendor among those with as
	// many presences (REGISTRATION, FIRST_PRESENCE or DRAW), nil when no
	// other vendor had as many.
	TieBreak *string `json:"tie_break"`
	// DrawKey is the vendor's draw key, sha256(seed + ":" + vendor id) in
	// hex, shown when the draw decided its place.
	DrawKey    *string  `json:"draw_key"`
	Categories []string `json:"categories,omitempty" db:"categories"`
	// PresenceID is the spuntista's presence of the day when it was
	// present at the call (spunta runs only).
	PresenceID *int64 `json:"presence_id,omitempty" db:"presence_id"`
	// TitleID and ConcessionID are the title a holder ranks with and its
	// current concession (kind CONCESSION only: presences belong to the
	// title, and pass with it in a subingresso).
	TitleID      *int64 `json:"title_id,omitempty" db:"-"`
	ConcessionID *int64 `json:"concession_id,omitempty" db:"-"`
	// drawKey is the key whatever decided, for the tie-breaks.
	drawKey string
}

// rankRow is a row of spuntaRankingSQL.
type rankRow struct {
	Sector        string   `db:"sector"`
	Rank          int64    `db:"rank"`
	VendorID      int64    `db:"vendor_id"`
	Denominazione string   `db:"denominazione"`
	Presences     int64    `db:"presences"`
	FirstPresence *string  `db:"first_presence"`
	RegisteredOn  *string  `db:"registered_on"`
	Categories    []string `db:"categories"`
	PresenceID    *int64   `db:"presence_id"`
	DrawKey       string   `db:"draw_key"`
}

// rankingArgs returns the arguments of spuntaRankingSQL: the ranking of
// market marketID on day, counting presences up to to, with the draw seed
// (nil: the last spunta's) and, when present, the spuntisti present at day's call.
func rankingArgs(sc regions.Scope, marketID int64, day, to time.Time, seed *string, present bool) pgx.NamedArgs {
	a := scopeArgs(sc)
	a["market"], a["day"], a["to"], a["seed"], a["present"] = marketID, day, to, seed, present
	return a
}

// rankEntries returns the rows of spuntaRankingSQL as entries, their
// tie-breaks labelled by tieBreaks.
func rankEntries(rs []rankRow, tieBreaks []string) []RankEntry {
	out := make([]RankEntry, len(rs))
	for i, r := range rs {
		out[i] = RankEntry{Sector: r.Sector, Rank: r.Rank, VendorID: r.VendorID, Denominazione: r.Denominazione,
			Presences: r.Presences, FirstPresence: r.FirstPresence, RegisteredOn: r.RegisteredOn,
			Categories: r.Categories, PresenceID: r.PresenceID, drawKey: r.DrawKey}
	}
	labelTieBreaks(out, tieBreaks)
	return out
}

// labelTieBreaks sets the TieBreak of every entry of ranking (ordered by
// sector and rank) that shares its presences with a neighbour: the deepest
// of the rules that separated it from the vendor before and the vendor
// after, in the order of tieBreaks; DrawKey is shown when it was the draw.
func labelTieBreaks(ranking []RankEntry, tieBreaks []string) {
	depth := func(a, b *RankEntry) int {
		for i, tb := range tieBreaks {
			switch tb {
			case tieRegistration:
				if !sameDate(a.RegisteredOn, b.RegisteredOn) {
					return i
				}
			case tieFirstPresence:
				if !sameDate(a.FirstPresence, b.FirstPresence) {
					return i
				}
			}
		}
		return len(tieBreaks) - 1 // the draw, last by the regolamento's check
	}
	for i := range ranking {
		e := &ranking[i]
		best := -1
		for _, j := range []int{i - 1, i + 1} {
			if j < 0 || j >= len(ranking) {
				continue
			}
			n := &ranking[j]
			if n.Sector != e.Sector || n.Presences != e.Presences {
				continue
			}
			best = max(best, depth(e, n))
		}
		if best < 0 {
			continue
		}
		tb := tieBreaks[best]
		e.TieBreak = &tb
		if tb == tieDraw {
			key := e.drawKey
			e.DrawKey = &key
		}
	}
}

func sameDate(a, b *string) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// DrawKey returns the draw key of vendorID under seed, as the ranking
// computes it in SQL: the hex of sha256(seed + ":" + vendor id). Anyone
// holding the seed a spunta recorded can so reproduce its draw.
func DrawKey(seed string, vendorID int64) string {
	sum := sha256.Sum256([]byte(seed + ":" + strconv.FormatInt(vendorID, 10)))
	return hex.EncodeToString(sum[:])
}

// GraduatoriaQuery selects a market's ranking: of Kind SPUNTA, as it
// stands on Date (presences up to it), of one Sector or all; of Kind
// CONCESSION, the holders' presences in Year up to Date.
type GraduatoriaQuery struct {
	Kind   string
	Year   int
	Date   time.Time
	Sector string
}

// GraduatoriaEntry is one vendor's place in a market's ranking.
type GraduatoriaEntry = RankEntry

// Graduatoria is one page of a market's ranking.
type Graduatoria struct {
	MarketID int64  `json:"market_id"`
	Year     int    `json:"year"`
	Date     string `json:"date"`
	Kind     string `json:"kind"`
	// Sectors tells whether the market ranks per sector (its regolamento);
	// Sector is the sector asked for, empty for all.
	Sectors   bool     `json:"sectors"`
	Sector    string   `json:"sector,omitempty"`
	TieBreaks []string `json:"tie_breaks,omitempty"`
	// Seed is the draw's seed: the one the market's last spunta up to
	// Date recorded, empty when none ran.
	Seed string `json:"seed"`
	List[GraduatoriaEntry]
}

// graduatoriaSeed selects the seed of market @market's last spunta on or
// before @day; graduatoriaSeedSQL reads it, or ”.
const graduatoriaSeed = `SELECT seed FROM spunta_runs
	WHERE market_id = @market AND region_id = @region AND date <= @day::date ORDER BY date DESC LIMIT 1`

var graduatoriaSeedSQL = named(`SELECT coalesce((` + graduatoriaSeed + `), '')`)

// GetGraduatoria returns one page (by offset; the ranking has no cursor)
// of market marketID's ranking in scope sc as q selects it, or ErrNotFound
// when the market is not in scope. The SPUNTA ranking is the spunta's
// (spuntaRankingSQL, presences up to q.Date inclusive), ordered by sector
// (ALIMENTARE first) and rank, with the draw of the market's last spunta
// up to that day.
func GetGraduatoria(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, marketID int64, q GraduatoriaQuery, p Page) (Graduatoria, error) {
	if q.Kind == "CONCESSION" {
		return getConcessionGraduatoria(ctx, sh, sc, marketID, q, p)
	}
	out := Graduatoria{MarketID: marketID, Year: q.Date.Year(), Date: q.Date.Format(time.DateOnly), Kind: q.Kind, Sector: q.Sector,
		List: List[GraduatoriaEntry]{Items: []GraduatoriaEntry{}, Limit: p.Limit, Offset: p.Offset}}
	a := rankingArgs(sc, marketID, q.Date, q.Date, nil, false)
	found := false
	var rows []rankRow
	// The ranking counts presences of every year, as the spunta's
	// (useGenericPlans): a custom plan would plan every partition at each
	// run (about 20 ms at 84 monthly partitions).
	err := sh.ReadGeneric(ctx, sc, func(b *pgx.Batch) {
		marketGuard.pick(a).queueFound(b, a, &found)
		rankingOptionsSQL.queue(b, a).QueryRow(func(row pgx.Row) error {
			return row.Scan(&out.Sectors, &out.TieBreaks)
		})
		graduatoriaSeedSQL.queue(b, a).QueryRow(func(row pgx.Row) error {
			return row.Scan(&out.Seed)
		})
		spuntaRankingSQL.queue(b, a).Query(func(r pgx.Rows) error {
			var err error
			rows, err = pgx.CollectRows(r, pgx.RowToStructByName[rankRow])
			return err
		})
	})
	if err != nil {
		return out, err
	}
	if !found {
		return out, ErrNotFound
	}
	ranking := rankEntries(rows, out.TieBreaks)
	var items []GraduatoriaEntry
	for _, e := range ranking {
		if q.Sector == "" || e.Sector == q.Sector {
			e.Categories, e.PresenceID = nil, nil
			items = append(items, e)
		}
	}
	out.Total = int64(len(items))
	if p.Offset < len(items) {
		items = items[p.Offset:min(len(items), p.Offset+p.Limit)]
		out.Items = items
	}
	return out, nil
}
