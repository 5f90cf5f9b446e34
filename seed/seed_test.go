package seed_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/seed"
	"github.com/dmshub/dmsrouter/shardmap"
	"github.com/dmshub/dmsrouter/taxcode"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// The tiny scale the tests seed.
const (
	tinyMarkets = 200
	tinyDays    = 14
)

var tinyToday = time.Date(2025, 6, 18, 0, 0, 0, 0, time.UTC)

// shares are the market shares of docs/domain.md (Scale to design for) in percent, by region number.
var shares = [21]float64{
	1: 7.2, 2: 0.2, 3: 17, 4: 1.8, 5: 8.2, 6: 2.0, 7: 2.6, 8: 7.5, 9: 6.2, 10: 1.5,
	11: 2.5, 12: 9.7, 13: 2.2, 14: 0.5, 15: 9.5, 16: 6.6, 17: 0.9, 18: 3.1, 19: 8.1, 20: 2.7,
}

func run(tb testing.TB, cfg shardmap.Config, opts seed.Options) []seed.TableStats {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stats, err := seed.Run(ctx, cfg, opts)
	if err != nil {
		tb.Fatalf("Run(%+v): %v", opts, err)
	}
	return stats
}

func tinyOptions(s int64) seed.Options {
	return seed.Options{Markets: tinyMarkets, Days: tinyDays, Seed: s, Today: tinyToday}
}

// db holds an admin connection to every shard of a deployment.
type db struct {
	cfg   shardmap.Config
	conns []*pgx.Conn
}

func open(tb testing.TB, cfg shardmap.Config) *db {
	tb.Helper()
	d := &db{cfg: cfg}
	for _, sh := range cfg.Shards {
		d.conns = append(d.conns, pgtest.Connect(tb, sh.AdminDSN()))
	}
	return d
}

// each runs fn on every shard.
func (d *db) each(fn func(sh shardmap.ShardConfig, conn *pgx.Conn)) {
	for i, sh := range d.cfg.Shards {
		fn(sh, d.conns[i])
	}
}

// collect runs query on every shard and returns all rows, each scanned with
// pgx.RowToStructByPos into T.
func collect[T any](tb testing.TB, d *db, query string, args ...any) []T {
	tb.Helper()
	var all []T
	d.each(func(sh shardmap.ShardConfig, conn *pgx.Conn) {
		rows, _ := conn.Query(context.Background(), query, args...)
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[T])
		if err != nil {
			tb.Fatalf("shard %s: %s: %v", sh.Name, query, err)
		}
		all = append(all, got...)
	})
	return all
}

// count sums a single-integer query over every shard.
func count(tb testing.TB, d *db, query string, args ...any) int64 {
	tb.Helper()
	var n int64
	for _, r := range collect[struct{ N int64 }](tb, d, query, args...) {
		n += r.N
	}
	return n
}

// none fails t for every query of checks, keyed by what it finds, that
// counts rows (noun) on the shards of d; each query may use $today (see
// atToday).
func none(t *testing.T, d *db, noun string, checks map[string]string) {
	t.Helper()
	for what, q := range checks {
		if n := count(t, d, atToday(q)); n != 0 {
			t.Errorf("%s: %d %s", what, n, noun)
		}
	}
}

// atToday returns query with $today replaced by tinyToday as a date literal.
func atToday(query string) string {
	return strings.ReplaceAll(query, "$today", "'"+tinyToday.Format(time.DateOnly)+"'::date")
}

// loaded are the tables Run loads and the order of their rows.
var loaded = []struct{ table, order string }{
	{"markets", "id"}, {"stalls", "id"}, {"vendors", "id"}, {"authorisations", "id"}, {"concessions", "id"},
	{"vendor_presences", "id"}, {"market_days", "market_id, date"}, {"absence_justifications", "concession_id, date"},
}

// fingerprint returns an md5 of every loaded table per region, each table's
// rows as text in key order.
func fingerprint(tb testing.TB, d *db) map[string]string {
	tb.Helper()
	fp := map[string]string{}
	for _, t := range loaded {
		for _, r := range collect[struct {
			Region int16
			N      int64
			MD5    string
		}](tb, d, `SELECT region_id, count(*), md5(string_agg(t::text, ',' ORDER BY `+t.order+`)) FROM `+t.table+` t GROUP BY region_id`) {
			fp[fmt.Sprintf("%s/%02d", t.table, r.Region)] = fmt.Sprintf("%d:%s", r.N, r.MD5)
		}
	}
	return fp
}

func TestSeed(t *testing.T) {
	// The big regions' shards drop and rebuild the presence indexes, the
	// small ones keep them: both paths must give the same rows.
	defer seed.SetRebuildMarketDays(300)()
	cfg := pgtest.NewDeployment(t, pg, "seed", pgtest.OnePerRegion())
	stats := run(t, cfg, tinyOptions(7))
	var names []string
	for _, s := range stats {
		names = append(names, s.Table)
		if s.Rows <= 0 {
			t.Errorf("stats %s: %d rows, want some", s.Table, s.Rows)
		}
	}
	var want []string
	for _, t := range loaded {
		want = append(want, t.table)
	}
	if !slices.Equal(names, want) {
		t.Errorf("stats tables = %v, want %v", names, want)
	}
	d := open(t, cfg)
	first := fingerprint(t, d)

	t.Run("invariants", func(t *testing.T) { checkInvariants(t, d, stats) })

	t.Run("empty partitions are never counted", func(t *testing.T) {
		// uncountEmptyPartitions: the months ahead stay as autovacuum
		// leaves them, and the partitioned table keeps its statistics.
		ctx := context.Background()
		d.each(func(sh shardmap.ShardConfig, conn *pgx.Conn) {
			rows, _ := conn.Query(ctx, `SELECT t.relid::regclass::text, c.reltuples FROM pg_partition_tree('vendor_presences') t
				JOIN pg_class c ON c.oid = t.relid WHERE t.isleaf`)
			type leaf struct {
				Name      string
				Reltuples float64
			}
			leaves, err := pgx.CollectRows(rows, pgx.RowToStructByPos[leaf])
			if err != nil {
				t.Fatal(err)
			}
			uncounted := 0
			for _, l := range leaves {
				var holds bool
				if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM "+l.Name+")").Scan(&holds); err != nil {
					t.Fatal(err)
				}
				switch {
				case !holds && l.Reltuples != -1:
					t.Errorf("shard %s: the empty %s is counted (reltuples %v), want never counted (-1)", sh.Name, l.Name, l.Reltuples)
				case !holds:
					uncounted++
				}
			}
			var inherited int64
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stats
				WHERE schemaname = 'public' AND tablename = 'vendor_presences' AND inherited`).Scan(&inherited); err != nil {
				t.Fatal(err)
			}
			if uncounted == 0 || inherited == 0 {
				t.Errorf("shard %s: %d empty presence partitions, %d columns of the partitioned table's statistics; want some of each",
					sh.Name, uncounted, inherited)
			}
		})
	})

	t.Run("presence indexes are valid on every partition", func(t *testing.T) {
		// The big regions' shards dropped and rebuilt them.
		if n := count(t, d, `SELECT count(*) AS n FROM pg_index WHERE NOT indisvalid`); n != 0 {
			t.Errorf("%d invalid indexes", n)
		}
		if n := count(t, d, `SELECT count(*) AS n FROM pg_inherits h
			WHERE h.inhparent = 'vendor_presences'::regclass
			  AND (SELECT count(*) FROM pg_index WHERE indrelid = h.inhrelid)
			   <> (SELECT count(*) FROM pg_index WHERE indrelid = 'vendor_presences'::regclass)`); n != 0 {
			t.Errorf("%d partitions lack indexes of vendor_presences", n)
		}
	})

	t.Run("refuses to seed twice", func(t *testing.T) {
		_, err := seed.Run(context.Background(), cfg, tinyOptions(8))
		if !errors.Is(err, seed.ErrNotEmpty) {
			t.Fatalf("second Run without Reset: err = %v, want ErrNotEmpty", err)
		}
		if !strings.Contains(err.Error(), "--reset") {
			t.Errorf("error %q does not mention --reset", err)
		}
		if got := fingerprint(t, d); !mapsEqual(got, first) {
			t.Errorf("refused Run changed the data")
		}
	})

	t.Run("reset reproduces the same rows", func(t *testing.T) {
		opts := tinyOptions(7)
		opts.Reset = true
		opts.Parallel = 5 // a different interleaving must not change a byte
		run(t, cfg, opts)
		if got := fingerprint(t, d); !mapsEqual(got, first) {
			t.Errorf("same options after Reset gave different rows")
		}
	})

	t.Run("one shard holds the same rows", func(t *testing.T) {
		single := pgtest.NewDeployment(t, pg, "seed1", pgtest.SingleShard())
		run(t, single, tinyOptions(7))
		if got := fingerprint(t, open(t, single)); !mapsEqual(got, first) {
			t.Errorf("SingleShard layout gave different rows from OnePerRegion")
		}
	})

	t.Run("another seed gives other rows", func(t *testing.T) {
		opts := tinyOptions(8)
		opts.Reset = true
		run(t, cfg, opts)
		got := fingerprint(t, d)
		same := 0
		for k, v := range got {
			if first[k] == v {
				same++
			}
		}
		if same > 0 {
			t.Errorf("seed 8 reproduced %d of %d (table, region) fingerprints of seed 7", same, len(got))
		}
		checkInvariants(t, d, nil)
	})
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func checkInvariants(t *testing.T, d *db, stats []seed.TableStats) {
	cfg := d.cfg
	t.Run("stats match the tables", func(t *testing.T) {
		for _, s := range stats {
			if n := count(t, d, "SELECT count(*) FROM "+s.Table); n != s.Rows {
				t.Errorf("%s: stats say %d rows, the shards hold %d", s.Table, s.Rows, n)
			}
		}
	})

	t.Run("rows live on their region's shard", func(t *testing.T) {
		for _, tb := range loaded {
			d.each(func(sh shardmap.ShardConfig, conn *pgx.Conn) {
				var n int64
				err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+tb.table+" WHERE region_id <> $1", regionOf(t, cfg, sh.Name).Num()).Scan(&n)
				if err != nil || n != 0 {
					t.Errorf("%s on shard %s: %d rows of another region (%v)", tb.table, sh.Name, n, err)
				}
			})
		}
	})

	t.Run("markets per region follow the shares", func(t *testing.T) {
		per := map[int16]int64{}
		for _, r := range collect[struct {
			Region int16
			N      int64
		}](t, d, "SELECT region_id, count(*) FROM markets GROUP BY 1") {
			per[r.Region] = r.N
		}
		var total int64
		for n := 1; n <= 20; n++ {
			want := shares[n] * tinyMarkets / 100
			if got := float64(per[int16(n)]); math.Abs(got-want) >= 1 {
				t.Errorf("region %02d: %v markets, want %.1f (share %.1f%%)", n, got, want, shares[n])
			}
			total += per[int16(n)]
		}
		if total != tinyMarkets {
			t.Errorf("markets = %d, want %d", total, tinyMarkets)
		}
	})

	t.Run("scale per market", func(t *testing.T) {
		markets := float64(tinyMarkets)
		within := func(what string, got, lo, hi float64) {
			if got < lo || got > hi {
				t.Errorf("%s = %.2f, want %.1f..%.1f", what, got, lo, hi)
			}
		}
		within("stalls per market", float64(count(t, d, "SELECT count(*) FROM stalls"))/markets, 13, 17)
		within("concessions per market", float64(count(t, d, "SELECT count(*) FROM concessions"))/markets, 10.5, 14.5)
		within("presences per market day", float64(count(t, d, "SELECT count(*) FROM vendor_presences"))/(markets*tinyDays), 8.5, 11.5)
		// Tiny regions get a floor of vendors of their own, so allow more.
		within("distinct vendors per market", float64(len(vendorsByPIVA(t, d)))/markets, 4.5, 6.5)
		if n := count(t, d, "SELECT count(*) FROM stalls s WHERE number > 60 OR NOT EXISTS (SELECT FROM stalls WHERE market_id = s.market_id AND number = 5)"); n != 0 {
			t.Errorf("%d stalls outside a market of 5..60 stalls", n)
		}
	})

	t.Run("markets are in their region's provinces", func(t *testing.T) {
		type mk struct {
			Region         int16
			Code, Province string
			Comune, Name   string
			ComuneName     string
			Days           []int16
		}
		codes := map[string]bool{}
		for _, m := range collect[mk](t, d, "SELECT region_id, code, province, comune, name, comune_name, days FROM markets") {
			r, _ := regions.CodeOf(int(m.Region))
			if got, err := regions.ComuneRegion(m.Comune); err != nil || got != r {
				t.Errorf("market %s: comune %s is in region %v (%v), want %s", m.Code, m.Comune, got, err, r)
			}
			if !slices.Contains(regions.Provinces(r), m.Province) {
				t.Errorf("market %s: province %s is not a plain province of region %s", m.Code, m.Province, r)
			}
			if codes[m.Code] {
				t.Errorf("market code %s is used twice", m.Code)
			}
			codes[m.Code] = true
			if len(m.Days) == 0 || !slices.IsSorted(m.Days) {
				t.Errorf("market %s: days %v, want sorted ISO weekdays", m.Code, m.Days)
			}
			if !strings.HasPrefix(m.Name, "Mercato") && !strings.Contains(m.Name, "'o Luni") {
				t.Errorf("market %s: name %q", m.Code, m.Name)
			}
			if m.ComuneName == "" {
				t.Errorf("market %s: no comune name", m.Code)
			}
		}
		// A comune has one name everywhere it appears.
		names := map[string]string{}
		for _, c := range collect[struct{ Comune, Name string }](t, d, "SELECT DISTINCT comune, comune_name FROM markets") {
			if real, err := regions.LookupComune(c.Comune); err != nil || real.Name != c.Name {
				t.Errorf("comune %s is called %q, the ISTAT list says %+v, %v", c.Comune, c.Name, real, err)
			}
			if n, ok := names[c.Comune]; ok && n != c.Name {
				t.Errorf("comune %s is called %q and %q", c.Comune, n, c.Name)
			}
			names[c.Comune] = c.Name
		}
	})

	t.Run("unique constraints hold", func(t *testing.T) {
		none(t, d, "duplicates", map[string]string{
			"presences per (market, date, vendor)": "SELECT count(*) FROM (SELECT FROM vendor_presences GROUP BY market_id, date, vendor_id HAVING count(*) > 1) d",
			"presences per (market, date, stall)":  "SELECT count(*) FROM (SELECT FROM vendor_presences WHERE stall_id IS NOT NULL GROUP BY market_id, date, stall_id HAVING count(*) > 1) d",
			"presences per (id, date)":             "SELECT count(*) FROM (SELECT FROM vendor_presences GROUP BY id HAVING count(*) > 1) d",
			"stalls per (market, number)":          "SELECT count(*) FROM (SELECT FROM stalls GROUP BY market_id, number HAVING count(*) > 1) d",
			"vendors per (region, partita_iva)":    "SELECT count(*) FROM (SELECT FROM vendors GROUP BY region_id, partita_iva HAVING count(*) > 1) d",
			"vendors per (region, codice_fiscale)": "SELECT count(*) FROM (SELECT FROM vendors GROUP BY region_id, codice_fiscale HAVING count(*) > 1) d",
		})
	})

	t.Run("concessions", func(t *testing.T) {
		if n := count(t, d, `SELECT count(*) FROM concessions a JOIN concessions b
			ON a.stall_id = b.stall_id AND a.id < b.id
			AND daterange(a.valid_from, coalesce(a.extended_to, a.valid_to), '[]') && daterange(b.valid_from, coalesce(b.extended_to, b.valid_to), '[]')
			WHERE a.status IN ('ATTIVA', 'SOSPESA') AND b.status IN ('ATTIVA', 'SOSPESA')`); n != 0 {
			t.Errorf("%d pairs of ATTIVA or SOSPESA concessions overlap on a stall", n)
		}
		none(t, d, "concessions", map[string]string{
			"SCADUTA not in the past":          "SELECT count(*) FROM concessions WHERE status = 'SCADUTA' AND coalesce(extended_to, valid_to) >= $today",
			"ATTIVA already expired":           "SELECT count(*) FROM concessions WHERE status = 'ATTIVA' AND coalesce(extended_to, valid_to) < $today",
			"ATTIVA not started":               "SELECT count(*) FROM concessions WHERE status = 'ATTIVA' AND valid_from > $today",
			"stall of another market":          "SELECT count(*) FROM concessions c JOIN stalls s ON s.id = c.stall_id WHERE s.market_id <> c.market_id OR s.comune <> c.comune",
			"concession on a non-FISSO stall":  "SELECT count(*) FROM concessions c JOIN stalls s ON s.id = c.stall_id WHERE s.type <> 'FISSO'",
			"two concessions of one vendor":    "SELECT count(*) FROM (SELECT FROM concessions GROUP BY market_id, vendor_id HAVING count(*) > 1) d",
			"longer than ten years":            "SELECT count(*) FROM concessions WHERE valid_to >= valid_from + interval '10 years'",
			"OCCUPATO without ATTIVA/SOSPESA ": "SELECT count(*) FROM stalls s WHERE status = 'OCCUPATO' AND NOT EXISTS (SELECT FROM concessions c WHERE c.stall_id = s.id AND c.status IN ('ATTIVA', 'SOSPESA') AND c.valid_to >= $today)",
		})
		byStatus := map[string]int64{}
		for _, r := range collect[struct {
			Status string
			N      int64
		}](t, d, "SELECT status, count(*) FROM concessions GROUP BY 1") {
			byStatus[r.Status] += r.N
		}
		var total int64
		for _, n := range byStatus {
			total += n
		}
		for _, s := range []string{"SOSPESA", "REVOCATA", "CESSATA", "SCADUTA"} {
			if f := float64(byStatus[s]) / float64(total); f < 0.01 || f > 0.15 {
				t.Errorf("%s: %.1f%% of concessions, want some (1..15%%)", s, 100*f)
			}
		}
		if f := float64(byStatus["ATTIVA"]) / float64(total); f < 0.65 || f > 0.9 {
			t.Errorf("ATTIVA: %.1f%% of concessions, want most", 100*f)
		}
		if n := count(t, d, atToday("SELECT count(*) FROM concessions WHERE status = 'ATTIVA' AND valid_to <= $today + 90")); n == 0 {
			t.Errorf("no ATTIVA concession expires within 90 days")
		}
	})

	t.Run("presences", func(t *testing.T) {
		none(t, d, "presences", map[string]string{
			"after today":                "SELECT count(*) FROM vendor_presences WHERE date > $today",
			"not on a market weekday":    "SELECT count(*) FROM vendor_presences p JOIN markets m ON m.id = p.market_id WHERE NOT extract(isodow FROM p.date)::smallint = ANY (m.days)",
			"comune not the market's":    "SELECT count(*) FROM vendor_presences p JOIN markets m ON m.id = p.market_id WHERE p.comune <> m.comune",
			"market missing":             "SELECT count(*) FROM vendor_presences p WHERE NOT EXISTS (SELECT FROM markets WHERE id = p.market_id)",
			"stall of another market":    "SELECT count(*) FROM vendor_presences p JOIN stalls s ON s.id = p.stall_id WHERE s.market_id <> p.market_id",
			"CONCESSION without stall":   "SELECT count(*) FROM vendor_presences WHERE kind = 'CONCESSION' AND (stall_id IS NULL)",
			"checkout before checkin":    "SELECT count(*) FROM vendor_presences WHERE checkout_at < checkin_at",
			"checked out today":          "SELECT count(*) FROM vendor_presences WHERE date = $today AND checkout_at IS NOT NULL",
			"checkin not on its day":     "SELECT count(*) FROM vendor_presences WHERE (checkin_at AT TIME ZONE 'Europe/Rome')::date <> date",
			"checkin before 6:30 (Rome)": "SELECT count(*) FROM vendor_presences WHERE (checkin_at AT TIME ZONE 'Europe/Rome')::time < '06:30'",
			"CONCESSION not by holder":   "SELECT count(*) FROM vendor_presences p WHERE kind = 'CONCESSION' AND NOT EXISTS (SELECT FROM concessions c WHERE c.stall_id = p.stall_id AND c.vendor_id = p.vendor_id AND p.date BETWEEN c.valid_from AND coalesce(c.extended_to, c.valid_to))",
			"SPUNTA by an ATTIVA holder": "SELECT count(*) FROM vendor_presences p WHERE kind = 'SPUNTA' AND EXISTS (SELECT FROM concessions c WHERE c.market_id = p.market_id AND c.vendor_id = p.vendor_id AND c.status = 'ATTIVA' AND p.date BETWEEN c.valid_from AND coalesce(c.extended_to, c.valid_to))",
		})
		// Every market has presences on its held days of its last tinyDays
		// market days.
		for _, r := range collect[struct {
			Code        string
			Days, Held  int64
			WithPresent int64
		}](t, d, `SELECT m.code, (SELECT count(*) FROM market_days WHERE market_id = m.id),
				(SELECT count(*) FROM market_days WHERE market_id = m.id AND status = 'HELD'),
				(SELECT count(DISTINCT date) FROM vendor_presences WHERE market_id = m.id)
			FROM markets m`) {
			if r.Days != tinyDays || r.WithPresent < r.Held-1 || r.WithPresent > r.Held { // a tiny market may see nobody one day
				t.Errorf("market %s: %d market days, %d held, presences on %d, want %d days with presences on the held ones", r.Code, r.Days, r.Held, r.WithPresent, tinyDays)
			}
		}
		var kinds []string
		for _, r := range collect[struct{ Kind string }](t, d, "SELECT DISTINCT kind FROM vendor_presences") {
			if !slices.Contains(kinds, r.Kind) {
				kinds = append(kinds, r.Kind)
			}
		}
		if slices.Sort(kinds); !slices.Equal(kinds, []string{"CONCESSION", "SPUNTA"}) {
			t.Errorf("presence kinds = %v, want CONCESSION and SPUNTA", kinds)
		}
		if n := count(t, d, "SELECT count(*) FROM vendor_presences WHERE kind = 'SPUNTA' AND stall_id IS NOT NULL"); n == 0 {
			t.Errorf("no spuntista got a stall")
		}
	})

	t.Run("market-day rules", func(t *testing.T) { checkMarketDayRules(t, d) })

	t.Run("rollups agree with their tables", func(t *testing.T) {
		for what, q := range map[string]string{
			"presence_daily": `SELECT count(*) FROM (SELECT market_id, date, kind, count(*) AS n FROM vendor_presences GROUP BY 1, 2, 3) p
				FULL JOIN presence_daily r USING (market_id, date, kind) WHERE p.n IS DISTINCT FROM r.n`,
			"presence_monthly": `SELECT count(*) FROM
				(SELECT region_id, date_trunc('month', date)::date AS month, kind, count(*) AS n FROM vendor_presences GROUP BY 1, 2, 3) p
				FULL JOIN (SELECT region_id, month, kind, sum(n) AS n FROM presence_monthly GROUP BY 1, 2, 3) r USING (region_id, month, kind)
				WHERE coalesce(p.n, 0) <> coalesce(r.n, 0)`,
			"region_status_counts": `SELECT count(*) FROM
				(SELECT region_id, 'stalls' AS entity, status, count(*) AS n FROM stalls GROUP BY 1, 3
				 UNION ALL SELECT region_id, 'concessions', status, count(*) FROM concessions GROUP BY 1, 3
				 UNION ALL SELECT region_id, 'markets', status, count(*) FROM markets GROUP BY 1, 3) p
				FULL JOIN (SELECT region_id, entity, status, sum(n) AS n FROM region_status_counts GROUP BY 1, 2, 3) r USING (region_id, entity, status)
				WHERE coalesce(p.n, 0) <> coalesce(r.n, 0)`,
			"market_day_counts": `SELECT count(*) FROM (SELECT region_id, date, status, count(*) AS n FROM market_days GROUP BY 1, 2, 3) p
				FULL JOIN market_day_counts r USING (region_id, date, status) WHERE coalesce(p.n, 0) <> coalesce(r.n, 0)`,
		} {
			if n := count(t, d, q); n != 0 {
				t.Errorf("%s: %d keys disagree", what, n)
			}
		}
	})

	t.Run("vendors act only where they have a row", func(t *testing.T) {
		for what, q := range map[string]string{
			"concessions": "SELECT count(*) FROM concessions c WHERE NOT EXISTS (SELECT FROM vendors v WHERE v.id = c.vendor_id AND v.region_id = c.region_id)",
			"presences":   "SELECT count(*) FROM vendor_presences p WHERE NOT EXISTS (SELECT FROM vendors v WHERE v.id = p.vendor_id AND v.region_id = p.region_id)",
		} {
			if n := count(t, d, q); n != 0 {
				t.Errorf("%s: %d rows name a vendor without a row in their region", what, n)
			}
		}
		// And nearly every vendor row acts in its region.
		idle := count(t, d, `SELECT count(*) FROM vendors v WHERE status <> 'CESSATA'
			AND NOT EXISTS (SELECT FROM concessions WHERE vendor_id = v.id)
			AND NOT EXISTS (SELECT FROM vendor_presences WHERE vendor_id = v.id)`)
		if rows := count(t, d, "SELECT count(*) FROM vendors"); float64(idle) > 0.1*float64(rows) {
			t.Errorf("%d of %d vendor rows neither hold a concession nor were ever present", idle, rows)
		}
	})

	t.Run("tax codes", func(t *testing.T) {
		byPIVA := vendorsByPIVA(t, d)
		multi := 0
		cfs := map[string]string{}
		for piva, vs := range byPIVA {
			if !taxcode.ValidPartitaIVA(piva) {
				t.Errorf("partita IVA %s: bad check digit", piva)
			}
			if len(vs) > 1 {
				multi++
			}
			for _, v := range vs {
				if v != vs[0] {
					t.Errorf("partita IVA %s differs between regions: %+v and %+v", piva, vs[0], v)
				}
				if !taxcode.ValidCodiceFiscale(v.CodiceFiscale) {
					t.Errorf("partita IVA %s: malformed codice fiscale %s", piva, v.CodiceFiscale)
				}
				if len(v.CodiceFiscale) == 11 && v.CodiceFiscale != piva {
					t.Errorf("company %s: codice fiscale %s is not its partita IVA", piva, v.CodiceFiscale)
				}
			}
			if other, ok := cfs[vs[0].CodiceFiscale]; ok {
				t.Errorf("codice fiscale %s belongs to %s and %s", vs[0].CodiceFiscale, other, piva)
			}
			cfs[vs[0].CodiceFiscale] = piva
		}
		if f := float64(multi) / float64(len(byPIVA)); f < 0.10 || f > 0.20 {
			t.Errorf("%.1f%% of vendors operate in two or more regions, want about 15%%", 100*f)
		}
		persons := 0
		for cf := range cfs {
			if len(cf) == 16 {
				persons++
			}
		}
		if persons == 0 || persons == len(cfs) {
			t.Errorf("%d of %d vendors are persons, want both persons and companies", persons, len(cfs))
		}
	})

	t.Run("sequences are past the loaded ids", func(t *testing.T) {
		for _, tb := range []string{"markets", "stalls", "vendors", "authorisations", "concessions", "vendor_presences"} {
			d.each(func(sh shardmap.ShardConfig, conn *pgx.Conn) {
				r := regionOf(t, cfg, sh.Name)
				var maxID, next int64
				err := conn.QueryRow(context.Background(), fmt.Sprintf(
					"SELECT coalesce(max(id), 0), (SELECT dms.next_id('%s', %d::smallint)) FROM %s", tb, r.Num(), tb)).Scan(&maxID, &next)
				if err != nil {
					t.Fatalf("%s on %s: %v", tb, sh.Name, err)
				}
				if next <= maxID || next>>regions.IDShift != int64(r.Num()) {
					t.Errorf("%s on %s: next id %d is not past max id %d", tb, sh.Name, next, maxID)
				}
			})
		}
	})
}

type vendorRow struct {
	PartitaIVA, CodiceFiscale, Denominazione, Comune, Status string
}

// vendorsByPIVA returns the vendor rows of every region by partita IVA.
func vendorsByPIVA(tb testing.TB, d *db) map[string][]vendorRow {
	tb.Helper()
	m := map[string][]vendorRow{}
	for _, v := range collect[vendorRow](tb, d, "SELECT partita_iva, codice_fiscale, denominazione, comune, status FROM vendors") {
		m[v.PartitaIVA] = append(m[v.PartitaIVA], v)
	}
	return m
}

// regionOf returns the one region of shard name (OnePerRegion layouts only).
func regionOf(tb testing.TB, cfg shardmap.Config, name string) regions.Code {
	tb.Helper()
	for code, sh := range cfg.Regions {
		if sh == name {
			return regions.Code(code)
		}
	}
	tb.Fatalf("shard %s holds no region", name)
	return ""
}

func TestRefusesRoleBoundByRLS(t *testing.T) {
	cfg := pgtest.NewDeployment(t, pg, "seedrls", pgtest.SingleShard())
	for i := range cfg.Shards {
		cfg.Shards[i].Admin = "" // AdminDSN falls back to the primary: dms_app
	}
	_, err := seed.Run(context.Background(), cfg, tinyOptions(1))
	if !errors.Is(err, seed.ErrPrivilege) {
		t.Fatalf("Run as dms_app: err = %v, want ErrPrivilege", err)
	}
	if !strings.Contains(err.Error(), "BYPASSRLS") {
		t.Errorf("error %q does not say what role is needed", err)
	}
}

func TestRejectsBadOptions(t *testing.T) {
	cfg := shardmap.Config{}
	for _, opts := range []seed.Options{
		{Markets: 0, Days: 1},
		{Markets: seed.MaxMarkets + 1, Days: 1},
		{Markets: 10, Days: -1},
		{Markets: 10, Days: seed.MaxDays + 1},
	} {
		if _, err := seed.Run(context.Background(), cfg, opts); err == nil {
			t.Errorf("Run(%+v) = nil error, want one", opts)
		}
	}
}

func TestBinaryEncoding(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.AdminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SET TimeZone = 'UTC'; CREATE TEMP TABLE enc (n numeric(8, 2), a smallint[], d date, t timestamptz, s text, i bigint)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(seed.EncodeSample()), "COPY enc FROM STDIN (FORMAT binary)"); err != nil {
		t.Fatalf("COPY: %v", err)
	}
	rows, _ := conn.Query(ctx, "SELECT concat_ws('|', n, a, d, coalesce(t::text, 'NULL'), s, coalesce(i::text, 'NULL')) FROM enc")
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"12.50|{1,3}|2026-05-04|2026-05-04 06:30:00+00|Forlì|281474976710657",
		"0.05|{}|1999-12-31|NULL||NULL",
		"0.00|{7}|2000-01-01|2000-01-01 00:00:00.000001+00|x|-1",
		"123456.78|{1,2,3,4,5,6}|2000-02-29|1999-12-31 23:59:59.999999+00|CONCESSION|1",
		"999999.99|{2}|2030-01-01|NULL|a|NULL",
		"10000.00|{2}|2030-01-01|NULL|b|NULL",
	}
	if !slices.Equal(got, want) {
		t.Errorf("binary COPY round trip:\n got %q\nwant %q", got, want)
	}
}
