package registry

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/shardmap"
)

// benchMarket is the spunta benchmark market: 60 stalls (the first
// 20 FISSO, held by 20 concessions; stalls 1-10 and 21-30 ALIMENTARE, the
// rest NON_ALIMENTARE; stall 25 reserved for producers), 40 spuntisti
// (the first 10 authorised in ALIMENTARE, the others in NON_ALIMENTARE;
// every fifth a producer) with 1 to 40 SPUNTA presences over the past
// year. Each market day, 15 holders check in and all 40 spuntisti.
type benchMarket struct {
	sh        *shardmap.Shard
	admin     *pgx.Conn
	market    int64
	spuntisti []int64
	first     time.Time // the first market day of the benchmark
}

func newBenchMarket(tb testing.TB, name string) *benchMarket {
	tb.Helper()
	ctx := context.Background()
	cfg := pgtest.NewDeployment(tb, pg, name, pgtest.SingleShard())
	m := &benchMarket{sh: pgtest.OpenMap(tb, cfg).Shards()[0], admin: pgtest.Connect(tb, cfg.Shards[0].AdminDSN()),
		first: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)}
	mk, err := CreateMarket(ctx, m.sh, lombardia, admin, NewMarket{Code: "MI900", Name: "Mercato Bench", Comune: "015146",
		ComuneName: "Milano", Days: []int16{1, 2, 3, 4, 5, 6, 7}, Status: "ACTIVE", CostPerSqm: 1})
	if err != nil {
		tb.Fatal(err)
	}
	m.market = mk.Value.ID
	exec := func(sql string, args ...any) {
		tb.Helper()
		if _, err := m.admin.Exec(ctx, sql, args...); err != nil {
			tb.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`SELECT dms.ensure_presence_partitions('2025-01-01', '2027-12-31')`)
	exec(`INSERT INTO stalls (id, region_id, market_id, comune, number, type, status, area_mq, sector, reserved_for)
		SELECT dms.next_id('stalls', 3::smallint), 3, $1, '015146', n, CASE WHEN n <= 20 THEN 'FISSO' ELSE 'SPUNTA' END,
			'LIBERO', 10, CASE WHEN n <= 10 OR n BETWEEN 21 AND 30 THEN 'ALIMENTARE' ELSE 'NON_ALIMENTARE' END,
			CASE WHEN n = 25 THEN 'PRODUTTORE' END
		FROM generate_series(1, 60) n`, m.market)
	exec(`INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune, registered_on, categories)
		SELECT dms.next_id('vendors', 3::smallint), 3, lpad((90000 + n)::text, 11, '0'), lpad((90000 + n)::text, 11, '0'),
			'Bench ' || n, '015146', date '2000-01-01' + (n % 7) * 365,
			CASE WHEN n > 20 AND n % 5 = 0 THEN '{PRODUTTORE}'::text[] ELSE '{}' END
		FROM generate_series(1, 60) n`)
	exec(`INSERT INTO concessions (id, region_id, market_id, comune, stall_id, vendor_id, valid_from, valid_to, status)
		SELECT dms.next_id('concessions', 3::smallint), 3, $1, '015146', s.id, v.id, '2020-01-01', '2030-12-31', 'ATTIVA'
		FROM (SELECT id, row_number() OVER (ORDER BY number) AS n FROM stalls WHERE market_id = $1 AND number <= 20) s
		JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM vendors WHERE denominazione LIKE 'Bench %' ORDER BY id LIMIT 20) v USING (n)`, m.market)
	rows, err := m.admin.Query(ctx, `SELECT id FROM vendors WHERE denominazione LIKE 'Bench %' ORDER BY id OFFSET 20`)
	if err != nil {
		tb.Fatal(err)
	}
	if m.spuntisti, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
		tb.Fatal(err)
	}
	exec(`INSERT INTO authorisations (id, region_id, vendor_id, type, sector, comune)
		SELECT dms.next_id('authorisations', 3::smallint), 3, v, 'B', CASE WHEN i <= 10 THEN 'ALIMENTARE' ELSE 'NON_ALIMENTARE' END, '015146'
		FROM unnest($1::bigint[]) WITH ORDINALITY x (v, i)`, m.spuntisti)
	exec(`INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, date, kind, checkin_at)
		SELECT dms.next_id('vendor_presences', 3::smallint), 3, $1, '015146', v, d, 'SPUNTA', d + time '07:00'
		FROM unnest($2::bigint[]) WITH ORDINALITY x (v, i)
		CROSS JOIN LATERAL (SELECT date '2025-01-06' + k * 7 AS d FROM generate_series(1, i::int) k) g`, m.market, m.spuntisti)
	return m
}

// checkIn checks in, on day, 15 of the holders (on their stalls) and all
// the spuntisti, before an 08:00 call.
func (m *benchMarket) checkIn(tb testing.TB, day time.Time) {
	tb.Helper()
	ctx := context.Background()
	_, err := m.admin.Exec(ctx, `INSERT INTO market_days (market_id, region_id, comune, date, status, call_at, updated_by)
		VALUES ($1, 3, '015146', $2::date, 'HELD', $2::date + time '08:00', 'bench')`, m.market, day)
	if err != nil {
		tb.Fatal(err)
	}
	_, err = m.admin.Exec(ctx, `INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at)
		SELECT dms.next_id('vendor_presences', 3::smallint), 3, $1, '015146', c.vendor_id, c.stall_id, $2::date, 'CONCESSION', $2::date + time '07:00'
		FROM concessions c WHERE c.market_id = $1 ORDER BY c.stall_id LIMIT 15`, m.market, day)
	if err != nil {
		tb.Fatal(err)
	}
	_, err = m.admin.Exec(ctx, `INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, date, kind, checkin_at)
		SELECT dms.next_id('vendor_presences', 3::smallint), 3, $1, '015146', v, $2::date, 'SPUNTA', $2::date + time '07:30'
		FROM unnest($3::bigint[]) v`, m.market, day, m.spuntisti)
	if err != nil {
		tb.Fatal(err)
	}
}

// day returns the i-th market day of the benchmark.
func (m *benchMarket) day(i int) time.Time { return m.first.AddDate(0, 0, i) }

// BenchmarkSpunta measures the spunta of the benchmark market: default, a
// whole market day run with the default choice (RunSpunta: one read batch
// and one write batch in one transaction, whatever the number of
// decisions); decision, one decision of a call made by hand (ChooseSpunta:
// one read batch and one write batch), a new day opened, off the clock,
// when a call ends.
func BenchmarkSpunta(b *testing.B) {
	ctx := context.Background()
	b.Run("default", func(b *testing.B) {
		m := newBenchMarket(b, fmt.Sprintf("registry_bench_spunta_%d", b.N))
		for i := range b.N {
			m.checkIn(b, m.day(i))
		}
		b.ResetTimer()
		for i := range b.N {
			if _, err := RunSpunta(ctx, m.sh, lombardia, admin, m.market, SpuntaDay{Date: m.day(i)}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decision", func(b *testing.B) {
		m := newBenchMarket(b, fmt.Sprintf("registry_bench_decision_%d", b.N))
		day := -1
		var s Spunta
		openDay := func() {
			day++
			m.checkIn(b, m.day(day))
			s = must(OpenSpunta(ctx, m.sh, lombardia, admin, m.market, SpuntaDay{Date: m.day(day)}))(b).Value
		}
		openDay()
		b.ResetTimer()
		for range b.N {
			if s.Turn == nil {
				b.StopTimer()
				openDay()
				b.StartTimer()
			}
			r, err := ChooseSpunta(ctx, m.sh, lombardia, admin, m.market,
				SpuntaChoice{Date: m.day(day), VendorID: s.Turn.VendorID, StallID: s.Turn.Free[0].ID})
			if err != nil {
				b.Fatal(err)
			}
			s = r.Value
		}
	})
}
