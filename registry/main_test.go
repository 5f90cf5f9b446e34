package registry

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// Scopes of the fixture: Lombardia (03) whole, its province of Milano
// (015), the comune of Milano (015146), and Lazio (12).
var (
	lombardia = regions.Scope{Region: "03", User: "tester"}
	milanoPr  = regions.Scope{Region: "03", Province: "015", User: "tester"}
	milano    = regions.Scope{Region: "03", Province: "015", Comune: "015146", User: "tester"}
	lazio     = regions.Scope{Region: "12", User: "tester"}
	admin     = Write{Actor: Actor{User: "tester", Role: "admin"}}
)

// world is the fixture: a single-shard deployment holding, in Lombardia,
// four markets (three in Milano, one in Bergamo), four stalls of the first,
// three vendors, two concessions and two presences today; in Lazio one
// market and one vendor with the partita IVA of a Lombard one.
type world struct {
	sh          *shardmap.Shard
	admin       *pgx.Conn // superuser, outside row-level security
	today       time.Time
	markets     map[string]Market // by code
	stalls      []Stall           // of MI001, by number
	vendors     map[string]Vendor // by denominazione
	concessions []Concession
	presences   []Presence
}

func newWorld(t *testing.T, name string) *world {
	t.Helper()
	return newWorldOn(t, pg, name)
}

// newWorldOn is newWorld on server srv.
func newWorldOn(t *testing.T, srv *pgtest.Server, name string) *world {
	t.Helper()
	ctx := context.Background()
	cfg := pgtest.NewDeployment(t, srv, "registry_"+name, pgtest.SingleShard())
	now := time.Now().UTC()
	w := &world{sh: pgtest.OpenMap(t, cfg).Shards()[0], admin: pgtest.Connect(t, cfg.Shards[0].AdminDSN()), today: time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC),
		markets: map[string]Market{}, vendors: map[string]Vendor{}}

	for _, in := range []struct {
		sc regions.Scope
		NewMarket
	}{
		{lombardia, NewMarket{Code: "MI001", Name: "Mercato Centrale", Comune: "015146", ComuneName: "Milano", Days: []int16{1, 4}, Status: "ACTIVE", CostPerSqm: 1.5}},
		{lombardia, NewMarket{Code: "MI002", Name: "mercato rionale", Comune: "015146", ComuneName: "Milano", Days: []int16{2}, Status: "ACTIVE", CostPerSqm: 1}},
		{lombardia, NewMarket{Code: "MI003", Name: "Mercato Vecchio", Comune: "015146", ComuneName: "Milano", Days: []int16{3}, Status: "INACTIVE", CostPerSqm: 1}},
		{lombardia, NewMarket{Code: "BG001", Name: "Mercato del Borgo", Comune: "016024", ComuneName: "Bergamo", Days: []int16{6}, Status: "ACTIVE", CostPerSqm: 2}},
		{lazio, NewMarket{Code: "RM001", Name: "Mercato Esquilino", Comune: "058091", ComuneName: "Roma", Days: []int16{1}, Status: "ACTIVE", CostPerSqm: 3}},
	} {
		w.markets[in.Code] = must(CreateMarket(ctx, w.sh, in.sc, admin, in.NewMarket))(t).Value
	}
	mi1 := w.markets["MI001"].ID
	for i, st := range []struct{ typ, status string }{{"FISSO", "LIBERO"}, {"FISSO", "OCCUPATO"}, {"SPUNTA", "RISERVATO"}, {"FISSO", "LIBERO"}} {
		s := must(CreateStall(ctx, w.sh, lombardia, admin, mi1, NewStall{Number: int32(i + 1), Type: st.typ, Status: st.status, AreaMq: 10}))(t)
		w.stalls = append(w.stalls, s.Value)
	}
	for _, in := range []struct {
		sc regions.Scope
		NewVendor
	}{
		{lombardia, NewVendor{PartitaIVA: "01234567897", CodiceFiscale: "01234567897", Denominazione: "Alfa Srl", Comune: "015146", Status: "ATTIVA"}},
		{lombardia, NewVendor{PartitaIVA: "12345678903", CodiceFiscale: "RSSMRA80A01H501U", Denominazione: "Beta di Mario Rossi", Comune: "058091", Status: "ATTIVA"}},
		{lombardia, NewVendor{PartitaIVA: "00743110157", CodiceFiscale: "00743110157", Denominazione: "Gamma Spa", Comune: "016024", Status: "ATTIVA"}},
		{lazio, NewVendor{PartitaIVA: "01234567897", CodiceFiscale: "01234567897", Denominazione: "Alfa Srl Roma", Comune: "015146", Status: "ATTIVA"}},
	} {
		w.vendors[in.Denominazione] = must(CreateVendor(ctx, w.sh, in.sc, admin, in.NewVendor))(t).Value
	}
	for _, in := range []NewConcession{
		{MarketID: mi1, StallID: w.stalls[0].ID, VendorID: w.vendors["Alfa Srl"].ID, ValidFrom: w.today.AddDate(0, 0, -30), ValidTo: w.today.AddDate(0, 0, 10)},
		{MarketID: mi1, StallID: w.stalls[1].ID, VendorID: w.vendors["Beta di Mario Rossi"].ID, ValidFrom: w.today.AddDate(0, 0, -30), ValidTo: w.today.AddDate(0, 0, 40)},
	} {
		w.concessions = append(w.concessions, must(CreateConcession(ctx, w.sh, lombardia, admin, in))(t).Value)
	}
	for _, in := range []CheckIn{
		{MarketID: mi1, VendorID: w.vendors["Alfa Srl"].ID, Kind: "CONCESSION", Date: w.today, CheckinAt: w.today.Add(7 * time.Hour)},
		{MarketID: mi1, VendorID: w.vendors["Gamma Spa"].ID, Kind: "SPUNTA", Date: w.today, CheckinAt: w.today.Add(8 * time.Hour)},
	} {
		w.presences = append(w.presences, must(CheckInVendor(ctx, w.sh, lombardia, admin, in))(t).Value)
	}
	return w
}

// must returns a function that fails tb when err is not nil and returns v.
func must[T any](v T, err error) func(testing.TB) T {
	return func(tb testing.TB) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}

// ids returns the ids of items, by id function id.
func ids[T any](items []T, id func(T) int64) []int64 {
	out := []int64{}
	for _, it := range items {
		out = append(out, id(it))
	}
	return out
}

// idsOf returns the ids of the items of m at keys, in that order.
func idsOf[K comparable, T any](m map[K]T, id func(T) int64, keys ...K) []int64 {
	out := []int64{}
	for _, k := range keys {
		out = append(out, id(m[k]))
	}
	return out
}

// checkList fails t unless a call of fn returned the error wantErr
// (errors.Is) and, without an error, a page l whose items have the ids want.
func checkList[T any](t *testing.T, fn string, l List[T], err, wantErr error, id func(T) int64, want []int64) {
	t.Helper()
	if !errors.Is(err, wantErr) {
		t.Fatalf("%s: %v, want %v", fn, err, wantErr)
	}
	if got := ids(l.Items, id); err == nil && !slices.Equal(got, want) {
		t.Errorf("%s = %v (total %d), want %v", fn, got, l.Total, want)
	}
}

// allPages follows the cursors of list from a first page of limit items to
// the last and returns the ids of every item in order; it fails t on an
// error or a page whose total is not total.
func allPages[T any](t *testing.T, list func(Page) (List[T], error), id func(T) int64, limit int, total int64) []int64 {
	t.Helper()
	var got []int64
	p := Page{Limit: limit}
	for range 100 {
		l, err := list(p)
		if err != nil {
			t.Fatalf("page %+v: %v", p, err)
		}
		if l.Total != total {
			t.Errorf("page %+v: total %d, want %d", p, l.Total, total)
		}
		got = append(got, ids(l.Items, id)...)
		if p.Cursor = l.NextCursor; p.Cursor == "" {
			return got
		}
	}
	t.Fatalf("more than 100 pages of %d: %v", limit, got)
	return nil
}

func marketID(m Market) int64         { return m.ID }
func stallID(s Stall) int64           { return s.ID }
func vendorID(v Vendor) int64         { return v.ID }
func concessionID(c Concession) int64 { return c.ID }
func presenceID(p Presence) int64     { return p.ID }
