package registry

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestSubingresso follows the sale of Alfa Srl's business to Gamma Spa at
// Milano's Mercato Centrale, as the comune's graduatoria of concession
// holders publishes it (presences from 60 days ago to today):
//
//	title (stall)   holder          presences                                      rank
//	A (1)           Alfa -> Gamma   Alfa: -20, -13, -6, today; Gamma after: -1     1 (5)
//	B (2)           Beta            -20, -13, -6 (-27 was cancelled: no count)      2 (3)
//	G (4)           Gamma           -20, -13                                        3 (2)
//
// The presences Alfa earned stay with title A and count for Gamma there,
// not for Gamma's own title G. Gamma then holds two concessions in the
// sector, the cap of a market of up to 100 stalls: it cannot buy Beta's
// too. A buyer that is not ATTIVA, a closed title, a date outside the
// term or after today are refused.
func TestSubingresso(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "subingresso")
	mi1 := w.markets["MI001"].ID
	alfa, beta, gamma := w.vendors["Alfa Srl"].ID, w.vendors["Beta di Mario Rossi"].ID, w.vendors["Gamma Spa"].ID
	titleA, titleB := w.concessions[0].ID, w.concessions[1].ID
	day := func(n int) time.Time { return w.today.AddDate(0, 0, n) }
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := w.admin.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	presence := func(vendor, stall int64, days ...int) {
		t.Helper()
		for _, d := range days {
			exec(`INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at)
				VALUES (dms.next_id('vendor_presences', 3::smallint), 3, $1, '015146', $2, $3, $4, 'CONCESSION', $4::date + time '07:00')`,
				mi1, vendor, stall, day(d))
		}
	}
	titleG := must(CreateConcession(ctx, w.sh, lombardia, admin, NewConcession{MarketID: mi1, StallID: w.stalls[3].ID, VendorID: gamma,
		ValidFrom: day(-30), ValidTo: day(300)}))(t).Value.ID
	presence(alfa, w.stalls[0].ID, -20, -13, -6) // and today, in the fixture
	presence(beta, w.stalls[1].ID, -27, -20, -13, -6)
	presence(gamma, w.stalls[3].ID, -20, -13)
	exec(`INSERT INTO market_days (market_id, region_id, comune, date, status, reason, updated_by) VALUES ($1, 3, '015146', $2, 'CANCELLED', 'maltempo', 'ufficio')`, mi1, day(-27))
	delta := must(CreateVendor(ctx, w.sh, lombardia, admin, NewVendor{PartitaIVA: "02345678906", CodiceFiscale: "02345678906",
		Denominazione: "Delta Snc", Comune: "015146", Status: "SOSPESA"}))(t).Value.ID

	type rank struct {
		title, concession, vendor, presences int64
	}
	ranking := func() []rank {
		t.Helper()
		l, err := TitleRanking(ctx, w.sh, lombardia, mi1, day(-60), w.today, w.today, Page{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var out []rank
		for i, e := range l.Items {
			if e.Rank != int64(i+1) || l.Total != int64(len(l.Items)) {
				t.Errorf("TitleRanking: entry %d has rank %d (total %d)", i, e.Rank, l.Total)
			}
			out = append(out, rank{e.TitleID, e.ConcessionID, e.VendorID, e.Presences})
		}
		return out
	}
	if got, want := ranking(), []rank{{titleA, titleA, alfa, 4}, {titleB, titleB, beta, 3}, {titleG, titleG, gamma, 2}}; !slices.Equal(got, want) {
		t.Errorf("TitleRanking before the sale = %v, want %v", got, want)
	}

	var conflict *ConflictError
	var invalid *InvalidError
	var missing *MissingError
	refusals := []struct {
		name string
		id   int64
		t    Transfer
		want any    // an error sentinel or a pointer to an error type
		rule string // of a *ConflictError
	}{
		{"a buyer that is not ATTIVA", titleA, Transfer{BuyerID: delta, Date: day(-5)}, &conflict, "buyer-not-active"},
		{"a date before the term", titleA, Transfer{BuyerID: gamma, Date: day(-31)}, &conflict, "title-ended"},
		{"a date after today", titleA, Transfer{BuyerID: gamma, Date: day(1)}, &invalid, ""},
		{"the holder as buyer", titleA, Transfer{BuyerID: alfa, Date: day(-5)}, &invalid, ""},
		{"a buyer of another region", titleA, Transfer{BuyerID: w.vendors["Alfa Srl Roma"].ID, Date: day(-5)}, &missing, ""},
		{"a concession that does not exist", titleA + 1000, Transfer{BuyerID: gamma, Date: day(-5)}, ErrNotFound, ""},
	}
	refuse := func(name string, id int64, tr Transfer, want any, rule string) {
		t.Helper()
		_, err := Subingresso(ctx, w.sh, lombardia, admin, id, tr, w.today)
		switch want := want.(type) {
		case error:
			if !errors.Is(err, want) {
				t.Errorf("%s: %v, want %v", name, err, want)
			}
		default:
			if !errors.As(err, want) {
				t.Errorf("%s: %v, want a %T", name, err, want)
			} else if c, ok := err.(*ConflictError); ok && c.Rule != rule {
				t.Errorf("%s: rule %q, want %q", name, c.Rule, rule)
			}
		}
	}
	for _, r := range refusals {
		refuse(r.name, r.id, r.t, r.want, r.rule)
	}

	// The sale, five days ago.
	res, err := Subingresso(ctx, w.sh, lombardia, admin, titleA, Transfer{BuyerID: gamma, Date: day(-5)}, w.today)
	if err != nil {
		t.Fatalf("Subingresso: %v", err)
	}
	n := res.Value
	if !res.Created || n.VendorID != gamma || n.StallID != w.stalls[0].ID || n.Status != "ATTIVA" ||
		n.ValidFrom != day(-5).Format(time.DateOnly) || n.ValidTo != w.concessions[0].ValidTo {
		t.Errorf("Subingresso = %+v, want Gamma's ATTIVA concession on stall 1 from %s to %s", res, day(-5).Format(time.DateOnly), w.concessions[0].ValidTo)
	}
	var (
		oldStatus, followsBy string
		title, follows       int64
		audits               int
	)
	if err := w.admin.QueryRow(ctx, `SELECT o.status, n.title_id, n.follows_id, n.follows_by,
			(SELECT count(*) FROM audit_log a WHERE a.entity = 'concession' AND ((a.entity_id = o.id AND a.action = 'status'
				AND a.after->>'status' = 'CESSATA') OR (a.entity_id = n.id AND a.action = 'create')))
		FROM concessions o, concessions n WHERE o.id = $1 AND n.id = $2`, titleA, n.ID).Scan(&oldStatus, &title, &follows, &followsBy, &audits); err != nil {
		t.Fatal(err)
	}
	if oldStatus != "CESSATA" || title != titleA || follows != titleA || followsBy != "SUBINGRESSO" || audits != 2 {
		t.Errorf("after the sale: old %s, new title %d follows %d by %s, %d audit rows; want CESSATA, title %d follows it by SUBINGRESSO, 2 audit rows",
			oldStatus, title, follows, followsBy, audits, titleA)
	}
	presence(gamma, w.stalls[0].ID, -1) // Gamma at its new stall
	if got, want := ranking(), []rank{{titleA, n.ID, gamma, 5}, {titleB, titleB, beta, 3}, {titleG, titleG, gamma, 2}}; !slices.Equal(got, want) {
		t.Errorf("TitleRanking after the sale = %v, want %v", got, want)
	}

	// Gamma now holds the most concessions of the sector the market allows;
	// the title sold is closed.
	refuse("a buyer at the cap", titleB, Transfer{BuyerID: gamma, Date: day(-1)}, &conflict, "concession-cap")
	refuse("a closed title", titleA, Transfer{BuyerID: beta, Date: day(-1)}, &conflict, "title-ended")
}
