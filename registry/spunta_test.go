package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// authorise gives vendors an authorisation (type B) in sector, as the table
// owner: a spuntista is ranked in the sectors it is authorised for.
func authorise(tb testing.TB, admin *pgx.Conn, sector string, vendors ...int64) {
	tb.Helper()
	_, err := admin.Exec(context.Background(), `INSERT INTO authorisations (id, region_id, vendor_id, type, sector, comune)
		SELECT dms.next_id('authorisations', 3::smallint), 3, v, 'B', $1, '015146' FROM unnest($2::bigint[]) v`, sector, vendors)
	if err != nil {
		tb.Fatal(err)
	}
}

// The worked examples run on market days of June 2026 at markets of their
// own; the spuntisti's past presences fall on the Mondays from 2025-01-06.
var spuntaDay = time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC)

// stallSpec is a stall of a worked example.
type stallSpec struct {
	number   int32
	sector   string // "" NON_ALIMENTARE
	reserved string // reserved_for, "" none
	status   string // "" LIBERO
}

// spuntistaSpec is a vendor of a worked example: the sectors of its
// authorisations, its registration date ("" unknown), its categories,
// its past SPUNTA presences at the market (2026's first when since2026)
// and its check-in on the day ("" absent; the call is at 08:00).
type spuntistaSpec struct {
	name       string
	sectors    []string
	registered string
	categories []string
	history    int
	since2026  bool
	checkin    string
}

// spuntaMarket is the market of a worked example.
type spuntaMarket struct {
	w       *world
	id      int64
	vendors map[string]int64
	names   map[int64]string
	stalls  map[int32]int64
}

// newSpuntaMarket creates market code with stalls and vendors, and the
// regolamento row (SQL values after market_id, region_id, comune) when
// regolamento is not empty; the spuntisti check in on day.
func newSpuntaMarket(t *testing.T, w *world, code string, stalls []stallSpec, vendors []spuntistaSpec, day time.Time, regolamento string) *spuntaMarket {
	t.Helper()
	ctx := context.Background()
	m := &spuntaMarket{w: w, vendors: map[string]int64{}, names: map[int64]string{}, stalls: map[int32]int64{}}
	m.id = must(CreateMarket(ctx, w.sh, lombardia, admin, NewMarket{Code: code, Name: "Mercato " + code, Comune: "015146",
		ComuneName: "Milano", Days: []int16{1}, Status: "ACTIVE", CostPerSqm: 1}))(t).Value.ID
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := w.admin.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`SELECT dms.ensure_presence_partitions('2025-01-01', '2026-12-31')`)
	if regolamento != "" {
		exec(fmt.Sprintf(`INSERT INTO market_regolamenti (market_id, region_id, comune, ranking_reset, tie_breaks, sectors)
			VALUES ($1, 3, '015146', %s)`, regolamento), m.id)
	}
	for _, s := range stalls {
		sector, status := cmpOr(s.sector, "NON_ALIMENTARE"), cmpOr(s.status, "LIBERO")
		var reserved *string
		if s.reserved != "" {
			reserved = &s.reserved
		}
		var id int64
		err := w.admin.QueryRow(ctx, `INSERT INTO stalls (id, region_id, market_id, comune, number, type, status, area_mq, sector, reserved_for)
			VALUES (dms.next_id('stalls', 3::smallint), 3, $1, '015146', $2, 'SPUNTA', $3, 10, $4, $5) RETURNING id`,
			m.id, s.number, status, sector, reserved).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		m.stalls[s.number] = id
	}
	for _, v := range vendors {
		var registered *string
		if v.registered != "" {
			registered = &v.registered
		}
		var id int64
		err := w.admin.QueryRow(ctx, `INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune, registered_on, categories)
			SELECT x.id, 3, lpad((x.id & 65535)::text, 11, '7'), lpad((x.id & 65535)::text, 11, '7'), $1, '015146', $2::date, $3
			FROM (SELECT dms.next_id('vendors', 3::smallint) AS id) x RETURNING id`,
			code+" "+v.name, registered, append([]string{}, v.categories...)).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		m.vendors[v.name], m.names[id] = id, v.name
		for _, s := range v.sectors {
			authorise(t, w.admin, s, id)
		}
		first := "2025-01-06"
		if v.since2026 {
			first = "2026-01-05"
		}
		exec(`INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, date, kind, checkin_at)
			SELECT dms.next_id('vendor_presences', 3::smallint), 3, $1, '015146', $2, d, 'SPUNTA', d + time '07:00'
			FROM (SELECT $3::date + 7 * k AS d FROM generate_series(0, $4 - 1) k) g`, m.id, id, first, v.history)
	}
	m.checkIn(t, day, vendors)
	return m
}

// checkIn records day as held with its call at 08:00 (UTC) and checks in
// the vendors that come; one after the call is LATE, as check-in records it.
func (m *spuntaMarket) checkIn(t *testing.T, day time.Time, vendors []spuntistaSpec) {
	t.Helper()
	ctx := context.Background()
	if _, err := m.w.admin.Exec(ctx, `INSERT INTO market_days (market_id, region_id, comune, date, status, call_at, updated_by)
		VALUES ($1, 3, '015146', $2::date, 'HELD', $2::date + time '08:00', 'test')`, m.id, day); err != nil {
		t.Fatal(err)
	}
	for _, v := range vendors {
		if v.checkin == "" {
			continue
		}
		_, err := m.w.admin.Exec(ctx, `INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, date, kind, checkin_at, outcome)
			VALUES (dms.next_id('vendor_presences', 3::smallint), 3, $1, '015146', $2, $3::date, 'SPUNTA', $3::date + $4::time,
				CASE WHEN $4::time > time '08:00' THEN 'LATE' END)`, m.id, m.vendors[v.name], day, v.checkin)
		if err != nil {
			t.Fatal(err)
		}
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ranking returns the names of the graduatoria of sector on day, each
// with its presences and tie-break, as a comune publishes it.
func (m *spuntaMarket) ranking(t *testing.T, day time.Time, sector string) string {
	t.Helper()
	g, err := GetGraduatoria(context.Background(), m.w.sh, milano, m.id, GraduatoriaQuery{Kind: "SPUNTA", Date: day, Sector: sector}, Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return m.entries(g.Items)
}

func (m *spuntaMarket) entries(items []RankEntry) string {
	var out []string
	for _, e := range items {
		s := fmt.Sprintf("%d.%s:%d", e.Rank, m.names[e.VendorID], e.Presences)
		if e.TieBreak != nil {
			s += "/" + *e.TieBreak
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// outcomes returns how each present spuntista's day went, by ranking
// order: name=stall number, or its outcome.
func (m *spuntaMarket) outcomes(s Spunta) string {
	var out []string
	for _, e := range s.Ranking {
		switch {
		case !e.Present:
			continue
		case e.StallNumber != nil:
			out = append(out, fmt.Sprintf("%s%s=%d", sectorMark(e.Sector), m.names[e.VendorID], *e.StallNumber))
		case e.Outcome != nil:
			out = append(out, fmt.Sprintf("%s%s=%s", sectorMark(e.Sector), m.names[e.VendorID], *e.Outcome))
		default:
			out = append(out, fmt.Sprintf("%s%s=?", sectorMark(e.Sector), m.names[e.VendorID]))
		}
	}
	return strings.Join(out, " ")
}

// sectorMark abbreviates a sector in outcomes: A: or N:, nothing for none.
func sectorMark(s string) string {
	if s == "" {
		return ""
	}
	return s[:1] + ":"
}

// events returns the events of s as "name ACTION [stall] {free}".
func (m *spuntaMarket) events(s Spunta) string {
	numbers := map[int64]int32{}
	for n, id := range m.stalls {
		numbers[id] = n
	}
	var out []string
	for _, e := range s.Events {
		x := m.names[e.VendorID] + " " + e.Action
		if e.StallID != nil {
			x += fmt.Sprintf(" %d", numbers[*e.StallID])
		}
		if len(e.Free) > 0 {
			x += fmt.Sprint(" ", e.Free)
		}
		out = append(out, x)
	}
	return strings.Join(out, ", ")
}

// presence returns vendor name's presence outcome and stall number on day.
func (m *spuntaMarket) presence(t *testing.T, name string, day time.Time) string {
	t.Helper()
	var outcome *string
	var number *int32
	err := m.w.admin.QueryRow(context.Background(), `SELECT p.outcome, s.number FROM vendor_presences p LEFT JOIN stalls s ON s.id = p.stall_id
		WHERE p.market_id = $1 AND p.vendor_id = $2 AND p.date = $3`, m.id, m.vendors[name], day).Scan(&outcome, &number)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s/%d", deref(outcome), derefN(number))
}

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

func derefN(n *int32) int32 {
	if n == nil {
		return 0
	}
	return *n
}

// TestSpuntaWorkedExamples checks the spunta and its graduatoria against
// worked examples, each as a comune would publish it.
func TestSpuntaWorkedExamples(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "spunta_examples")
	day := spuntaDay
	nonAl := []string{"NON_ALIMENTARE"}
	run := func(t *testing.T, m *spuntaMarket, d SpuntaDay) Spunta {
		t.Helper()
		return must(RunSpunta(ctx, w.sh, milano, admin, m.id, d))(t).Value
	}

	t.Run("ties by registration", func(t *testing.T) {
		// Graduatoria of 14-06-2026, NON_ALIMENTARE (presences since 2025):
		//   1. Carla  7
		//   2. Bruno  5  registered 2005-03-01  (REGISTRATION)
		//   3. Anna   5  registered 2010-09-15  (REGISTRATION)
		//   4. Dario  5  registration unknown: after every known date
		// Three stalls: Carla 1, Bruno 2, Anna 3, Dario none (his presence
		// still counts: UNASSIGNED).
		m := newSpuntaMarket(t, w, "SP001", []stallSpec{{number: 1}, {number: 2}, {number: 3}}, []spuntistaSpec{
			{name: "Anna", sectors: nonAl, registered: "2010-09-15", history: 5, checkin: "07:30"},
			{name: "Bruno", sectors: nonAl, registered: "2005-03-01", history: 5, checkin: "07:40"},
			{name: "Carla", sectors: nonAl, registered: "2015-01-01", history: 7, checkin: "07:50"},
			{name: "Dario", sectors: nonAl, history: 5, checkin: "07:10"},
		}, day, "")
		if got, want := m.ranking(t, day.AddDate(0, 0, -1), "NON_ALIMENTARE"),
			"1.Carla:7 2.Bruno:5/REGISTRATION 3.Anna:5/REGISTRATION 4.Dario:5/REGISTRATION"; got != want {
			t.Errorf("graduatoria = %s, want %s", got, want)
		}
		s := run(t, m, SpuntaDay{Date: day})
		if got, want := m.outcomes(s), "N:Carla=1 N:Bruno=2 N:Anna=3 N:Dario=UNASSIGNED"; got != want {
			t.Errorf("spunta = %s, want %s", got, want)
		}
		if got, want := m.events(s), "Carla OFFER [1 2 3], Carla CHOSEN 1, Bruno OFFER [2 3], Bruno CHOSEN 2, Anna OFFER [3], Anna CHOSEN 3, Dario NO_STALL"; got != want {
			t.Errorf("events = %s\nwant     %s", got, want)
		}
		if got := m.presence(t, "Dario", day); got != "UNASSIGNED/0" {
			t.Errorf("Dario's presence = %s, want UNASSIGNED without a stall", got)
		}
		// The day's presences count from the day after: all four gain one.
		if got, want := m.ranking(t, day, ""), "1.Carla:8 2.Bruno:6/REGISTRATION 3.Anna:6/REGISTRATION 4.Dario:6/REGISTRATION"; got != want {
			t.Errorf("graduatoria after the day = %s, want %s", got, want)
		}
	})

	t.Run("a draw reproduced from its seed", func(t *testing.T) {
		// Elsa, Fabio and Gino have 4 presences each and registered the
		// same day: the draw decides, by sha256(seed + ":" + vendor id).
		m := newSpuntaMarket(t, w, "SP002", []stallSpec{{number: 1}, {number: 2}}, []spuntistaSpec{
			{name: "Elsa", sectors: nonAl, registered: "2012-05-02", history: 4, checkin: "07:30"},
			{name: "Fabio", sectors: nonAl, registered: "2012-05-02", history: 4, checkin: "07:30"},
			{name: "Gino", sectors: nonAl, registered: "2012-05-02", history: 4, checkin: "07:30"},
		}, day, "")
		const seed = "comune-di-milano-2026-06-15"
		key := func(name string) string {
			sum := sha256.Sum256([]byte(seed + ":" + fmt.Sprint(m.vendors[name])))
			return hex.EncodeToString(sum[:])
		}
		names := []string{"Elsa", "Fabio", "Gino"}
		slices.SortFunc(names, func(a, b string) int { return strings.Compare(key(a), key(b)) })
		s := must(OpenSpunta(ctx, w.sh, milano, admin, m.id, SpuntaDay{Date: day, Seed: seed}))(t).Value
		want := fmt.Sprintf("1.%s:4/DRAW 2.%s:4/DRAW 3.%s:4/DRAW", names[0], names[1], names[2])
		var ranked []RankEntry
		for _, e := range s.Ranking {
			ranked = append(ranked, e.RankEntry)
			if e.DrawKey == nil || *e.DrawKey != key(m.names[e.VendorID]) {
				t.Errorf("%s's draw key = %v, want %s", m.names[e.VendorID], e.DrawKey, key(m.names[e.VendorID]))
			}
		}
		if got := m.entries(ranked); got != want || s.Seed != seed {
			t.Errorf("ranking with seed %q = %s, want %s", s.Seed, got, want)
		}
		// Closed at once, nobody chose: all three are present without a
		// stall, and earn the presence.
		s = must(CloseSpunta(ctx, w.sh, milano, admin, m.id, SpuntaDay{Date: day}))(t).Value
		if got, want := m.outcomes(s), fmt.Sprintf("N:%s=UNASSIGNED N:%s=UNASSIGNED N:%s=UNASSIGNED", names[0], names[1], names[2]); got != want {
			t.Errorf("closed at once = %s, want %s", got, want)
		}
		// The graduatoria shows the draw of the day's run.
		g, err := GetGraduatoria(ctx, w.sh, milano, m.id, GraduatoriaQuery{Kind: "SPUNTA", Date: day}, Page{Limit: 10})
		if err != nil || g.Seed != seed || m.entries(g.Items) != fmt.Sprintf("1.%s:5/DRAW 2.%s:5/DRAW 3.%s:5/DRAW", names[0], names[1], names[2]) {
			t.Errorf("graduatoria = %+v, %v", g, err)
		}
	})

	t.Run("a refusal earns no presence", func(t *testing.T) {
		// Ivo (6) refuses stall 1; Lia (3) is next in line and takes it.
		m := newSpuntaMarket(t, w, "SP003", []stallSpec{{number: 1}}, []spuntistaSpec{
			{name: "Ivo", sectors: nonAl, history: 6, checkin: "07:30"},
			{name: "Lia", sectors: nonAl, history: 3, checkin: "07:30"},
		}, day, "")
		s := must(OpenSpunta(ctx, w.sh, milano, admin, m.id, SpuntaDay{Date: day}))(t).Value
		if s.Turn == nil || s.Turn.VendorID != m.vendors["Ivo"] || len(s.Turn.Free) != 1 {
			t.Fatalf("turn = %+v, want Ivo offered stall 1", s.Turn)
		}
		var conflict *ConflictError
		if _, err := ChooseSpunta(ctx, w.sh, milano, admin, m.id, SpuntaChoice{Date: day, VendorID: m.vendors["Lia"], StallID: m.stalls[1]}); !errors.As(err, &conflict) || conflict.Rule != "not-your-turn" {
			t.Errorf("Lia choosing at Ivo's turn: %v, want not-your-turn", err)
		}
		s = must(ChooseSpunta(ctx, w.sh, milano, admin, m.id, SpuntaChoice{Date: day, VendorID: m.vendors["Ivo"], Refuse: true}))(t).Value
		if s.Turn == nil || s.Turn.VendorID != m.vendors["Lia"] {
			t.Fatalf("turn after the refusal = %+v, want Lia", s.Turn)
		}
		s = must(ChooseSpunta(ctx, w.sh, milano, admin, m.id, SpuntaChoice{Date: day, VendorID: m.vendors["Lia"], StallID: m.stalls[1]}))(t).Value
		if s.Turn != nil {
			t.Errorf("turn after the last choice = %+v, want none", s.Turn)
		}
		s = must(CloseSpunta(ctx, w.sh, milano, admin, m.id, SpuntaDay{Date: day}))(t).Value
		if got, want := m.outcomes(s), "N:Ivo=REFUSED N:Lia=1"; got != want || s.Status != "CLOSED" {
			t.Errorf("spunta = %s (%s), want %s", got, s.Status, want)
		}
		if got, want := m.events(s), "Ivo OFFER [1], Ivo REFUSED, Lia OFFER [1], Lia CHOSEN 1"; got != want {
			t.Errorf("events = %s, want %s", got, want)
		}
		if got := m.presence(t, "Ivo", day); got != "REFUSED/0" {
			t.Errorf("Ivo's presence = %s", got)
		}
		if got, want := m.ranking(t, day, ""), "1.Ivo:6 2.Lia:4"; got != want {
			t.Errorf("graduatoria after the day = %s, want %s (the refusal earns nothing)", got, want)
		}
		if _, err := ChooseSpunta(ctx, w.sh, milano, admin, m.id, SpuntaChoice{Date: day, VendorID: m.vendors["Lia"], Refuse: true}); !errors.As(err, &conflict) || conflict.Rule != "spunta-closed" {
			t.Errorf("a choice after the close: %v, want spunta-closed", err)
		}
		if _, err := OpenSpunta(ctx, w.sh, milano, admin, m.id, SpuntaDay{Date: day}); !errors.As(err, &conflict) || conflict.Rule != "spunta-closed" {
			t.Errorf("opening again: %v, want spunta-closed", err)
		}
	})

	t.Run("a late check-in is not called and not counted", func(t *testing.T) {
		// Nino (9 presences) checks in at 08:20, after the 08:00 call: he
		// is ABSENT at the call and the day earns him nothing; Olga takes
		// the stall.
		m := newSpuntaMarket(t, w, "SP004", []stallSpec{{number: 1}}, []spuntistaSpec{
			{name: "Nino", sectors: nonAl, history: 9, checkin: "08:20"},
			{name: "Olga", sectors: nonAl, history: 2, checkin: "07:55"},
		}, day, "")
		s := run(t, m, SpuntaDay{Date: day})
		if got, want := m.events(s), "Nino ABSENT, Olga OFFER [1], Olga CHOSEN 1"; got != want {
			t.Errorf("events = %s, want %s", got, want)
		}
		if got := m.presence(t, "Nino", day); got != "LATE/0" {
			t.Errorf("Nino's presence = %s, want LATE", got)
		}
		if got, want := m.ranking(t, day, ""), "1.Nino:9 2.Olga:3"; got != want {
			t.Errorf("graduatoria after the day = %s, want %s", got, want)
		}
	})

	t.Run("a reserved stall", func(t *testing.T) {
		// Stall 1 is reserved for producers. Paolo (8, no category) is
		// called first but offered only stall 2 while Rita (4, PRODUTTORE)
		// waits; Rita gets stall 1. A week later Rita is absent: Paolo is
		// offered both and takes the lowest, the reserved one.
		vendors := []spuntistaSpec{
			{name: "Paolo", sectors: nonAl, history: 8, checkin: "07:30"},
			{name: "Rita", sectors: nonAl, categories: []string{"PRODUTTORE"}, history: 4, checkin: "07:30"},
		}
		m := newSpuntaMarket(t, w, "SP005", []stallSpec{{number: 1, reserved: "PRODUTTORE"}, {number: 2}}, vendors, day, "")
		s := run(t, m, SpuntaDay{Date: day})
		if got, want := m.events(s), "Paolo OFFER [2], Paolo CHOSEN 2, Rita OFFER [1], Rita CHOSEN 1"; got != want {
			t.Errorf("events = %s, want %s", got, want)
		}
		next := day.AddDate(0, 0, 7)
		m.checkIn(t, next, vendors[:1])
		s = run(t, m, SpuntaDay{Date: next})
		if got, want := m.events(s), "Rita ABSENT, Paolo OFFER [1 2], Paolo CHOSEN 1"; got != want {
			t.Errorf("events without a producer = %s, want %s", got, want)
		}
	})

	t.Run("sectors", func(t *testing.T) {
		// Stall 1 ALIMENTARE, 2 and 3 NON_ALIMENTARE. Sara (food only, 9)
		// is called first, in ALIMENTARE, and offered stall 1 alone:
		// choosing stall 2 breaks wrong-sector. Ugo (food only, 5) finds no
		// food stall left: NO_STALL, never a non-food one. Vera (both
		// sectors, 3) has NO_STALL in ALIMENTARE too and then takes 2.
		food, both := []string{"ALIMENTARE"}, []string{"ALIMENTARE", "NON_ALIMENTARE"}
		m := newSpuntaMarket(t, w, "SP006", []stallSpec{{number: 1, sector: "ALIMENTARE"}, {number: 2}, {number: 3}}, []spuntistaSpec{
			{name: "Sara", sectors: food, history: 9, checkin: "07:30"},
			{name: "Ugo", sectors: food, history: 5, checkin: "07:30"},
			{name: "Vera", sectors: both, history: 3, checkin: "07:30"},
		}, day, "")
		must(OpenSpunta(ctx, w.sh, milano, admin, m.id, SpuntaDay{Date: day}))(t)
		var conflict *ConflictError
		for _, tt := range []struct {
			stall int64
			rule  string
		}{{m.stalls[2], "wrong-sector"}} {
			if _, err := ChooseSpunta(ctx, w.sh, milano, admin, m.id, SpuntaChoice{Date: day, VendorID: m.vendors["Sara"], StallID: tt.stall}); !errors.As(err, &conflict) || conflict.Rule != tt.rule {
				t.Errorf("Sara choosing stall %d: %v, want %s", tt.stall, err, tt.rule)
			}
		}
		must(ChooseSpunta(ctx, w.sh, milano, admin, m.id, SpuntaChoice{Date: day, VendorID: m.vendors["Sara"], StallID: m.stalls[1]}))(t)
		if _, err := ChooseSpunta(ctx, w.sh, milano, admin, m.id, SpuntaChoice{Date: day, VendorID: m.vendors["Vera"], StallID: m.stalls[1]}); !errors.As(err, &conflict) || conflict.Rule != "stall-not-free" {
			t.Errorf("Vera choosing Sara's stall: %v, want stall-not-free", err)
		}
		s := must(ChooseSpunta(ctx, w.sh, milano, admin, m.id, SpuntaChoice{Date: day, VendorID: m.vendors["Vera"], StallID: m.stalls[2]}))(t).Value
		if got, want := m.outcomes(s), "A:Sara=1 A:Ugo=UNASSIGNED A:Vera=UNASSIGNED N:Vera=2"; got != want {
			t.Errorf("spunta = %s, want %s", got, want)
		}
		if got := m.presence(t, "Vera", day); got != "ASSIGNED/2" {
			t.Errorf("Vera's presence = %s, want ASSIGNED on 2", got)
		}
		if got, want := m.ranking(t, day.AddDate(0, 0, -1), "NON_ALIMENTARE"), "1.Vera:3"; got != want {
			t.Errorf("NON_ALIMENTARE graduatoria = %s, want %s (only Vera is authorised)", got, want)
		}
	})

	t.Run("the ranking resets yearly or never", func(t *testing.T) {
		// Zeno earned 20 presences from 2025-01-06, Yuri 10 since
		// 2026-01-05. Where the ranking never resets, Zeno leads; where
		// the regolamento resets it every year, Zeno's 2025 presences are
		// gone (he has 2026's from 05-01 on, fewer than Yuri's).
		specs := []spuntistaSpec{
			{name: "Zeno", sectors: nonAl, history: 60},
			{name: "Yuri", sectors: nonAl, history: 10, since2026: true},
		}
		never := newSpuntaMarket(t, w, "SP007", nil, specs, day, "")
		if got, want := never.ranking(t, day, ""), "1.Zeno:60 2.Yuri:10"; got != want {
			t.Errorf("NEVER graduatoria = %s, want %s", got, want)
		}
		yearly := newSpuntaMarket(t, w, "SP008", nil, specs, day, `'YEARLY', '{REGISTRATION,DRAW}', true`)
		if got, want := yearly.ranking(t, day, ""), "1.Yuri:10 2.Zeno:8"; got != want {
			t.Errorf("YEARLY graduatoria = %s, want %s", got, want)
		}
	})

	t.Run("an assignment lasts one day", func(t *testing.T) {
		vendors := []spuntistaSpec{{name: "Aldo", sectors: nonAl, history: 1, checkin: "07:30"}}
		m := newSpuntaMarket(t, w, "SP009", []stallSpec{{number: 1}}, vendors, day, "")
		if s := run(t, m, SpuntaDay{Date: day}); m.outcomes(s) != "N:Aldo=1" {
			t.Fatalf("spunta = %s", m.outcomes(s))
		}
		var status string
		if err := w.admin.QueryRow(ctx, `SELECT status FROM stalls WHERE id = $1`, m.stalls[1]).Scan(&status); err != nil || status != "LIBERO" {
			t.Errorf("stall 1 after the spunta: %s, %v; want LIBERO", status, err)
		}
		next := day.AddDate(0, 0, 7)
		m.checkIn(t, next, vendors)
		if s := run(t, m, SpuntaDay{Date: next}); m.outcomes(s) != "N:Aldo=1" {
			t.Errorf("spunta a week later = %s, want stall 1 free again", m.outcomes(s))
		}
	})
}

// TestSpuntaInteractiveIsDefault checks that making the choices one by
// one, each the lowest stall offered, ends as the default run does, on
// two identical markets.
func TestSpuntaInteractiveIsDefault(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "spunta_interactive")
	day := spuntaDay
	stalls := []stallSpec{{number: 1, sector: "ALIMENTARE"}, {number: 2, sector: "ALIMENTARE", reserved: "PRODUTTORE"},
		{number: 3}, {number: 4, reserved: "DISABILE"}, {number: 5}, {number: 6, status: "RISERVATO"}}
	food, nonAl, both := []string{"ALIMENTARE"}, []string{"NON_ALIMENTARE"}, []string{"ALIMENTARE", "NON_ALIMENTARE"}
	vendors := []spuntistaSpec{
		{name: "A", sectors: food, history: 9, checkin: "07:00"},
		{name: "B", sectors: food, history: 7, categories: []string{"PRODUTTORE"}, checkin: "07:00"},
		{name: "C", sectors: both, history: 7, registered: "2001-01-01", checkin: "07:00"},
		{name: "D", sectors: nonAl, history: 5, registered: "2003-01-01", checkin: "07:00"},
		{name: "E", sectors: nonAl, history: 5, registered: "2004-01-01", checkin: "07:00"},
		{name: "F", sectors: nonAl, history: 2, categories: []string{"DISABILE"}, checkin: "07:00"},
		{name: "G", sectors: nonAl, history: 1},
		{name: "H", sectors: food, history: 0, checkin: "07:59"},
	}
	const seed = "stesso-seme"
	def := newSpuntaMarket(t, w, "SP101", stalls, vendors, day, "")
	one := newSpuntaMarket(t, w, "SP102", stalls, vendors, day, "")
	// The markets' vendors differ, and so would a draw: no tie here
	// needs one.
	want := must(RunSpunta(ctx, w.sh, milano, admin, def.id, SpuntaDay{Date: day, Seed: seed}))(t).Value

	s := must(OpenSpunta(ctx, w.sh, milano, admin, one.id, SpuntaDay{Date: day, Seed: seed}))(t).Value
	for range 20 {
		got, err := GetSpunta(ctx, w.sh, milano, one.id, day)
		if err != nil {
			t.Fatal(err)
		}
		if got.Turn == nil {
			break
		}
		s = must(ChooseSpunta(ctx, w.sh, milano, admin, one.id, SpuntaChoice{Date: day, VendorID: got.Turn.VendorID, StallID: got.Turn.Free[0].ID}))(t).Value
	}
	s = must(CloseSpunta(ctx, w.sh, milano, admin, one.id, SpuntaDay{Date: day}))(t).Value
	if got, dflt := one.outcomes(s), def.outcomes(want); got != dflt {
		t.Errorf("one by one = %s\ndefault    = %s", got, dflt)
	}
	if got, dflt := one.events(s), def.events(want); got != dflt {
		t.Errorf("events one by one = %s\ndefault           = %s", got, dflt)
	}
	if want.Assigned != s.Assigned || s.Status != "CLOSED" {
		t.Errorf("assigned %d, status %s; default run assigned %d", s.Assigned, s.Status, want.Assigned)
	}
	if got := def.outcomes(want); got != "A:A=1 A:C=UNASSIGNED A:B=2 A:H=UNASSIGNED N:C=3 N:D=5 N:E=UNASSIGNED N:F=4" {
		t.Errorf("default run = %s", got)
	}
	again := must(RunSpunta(ctx, w.sh, milano, admin, one.id, SpuntaDay{Date: day}))(t)
	if !again.Value.AlreadyRun || again.Created || one.outcomes(again.Value) != one.outcomes(s) {
		t.Errorf("RunSpunta after the close = %+v, want the stored outcome", again)
	}
}
