package registry

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestWrites(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "writes")
	mi1 := w.markets["MI001"].ID
	alfa, beta, gamma := w.vendors["Alfa Srl"].ID, w.vendors["Beta di Mario Rossi"].ID, w.vendors["Gamma Spa"].ID
	float := func(f float64) *float64 { return &f }
	var (
		conflict *ConflictError
		missing  *MissingError
		invalid  *InvalidError
		rejected *RejectedError
	)
	for _, tt := range []struct {
		name  string
		write func() error
		want  any // nil, a sentinel error, or a pointer to an error type
	}{
		{"a market code taken", func() error {
			_, err := CreateMarket(ctx, w.sh, lombardia, admin, NewMarket{Code: "MI001", Name: "x", Comune: "015146", ComuneName: "Milano", Days: []int16{1}, Status: "ACTIVE"})
			return err
		}, &conflict},
		{"a market outside the scope", func() error {
			_, err := UpdateMarket(ctx, w.sh, milano, admin, w.markets["BG001"].ID, MarketPatch{Name: Field[string]{true, "x"}})
			return err
		}, ErrNotFound},
		{"a stall number taken", func() error {
			_, err := CreateStall(ctx, w.sh, lombardia, admin, mi1, NewStall{Number: 1, Type: "FISSO", Status: "LIBERO", AreaMq: 1})
			return err
		}, &conflict},
		{"a stall out of range", func() error {
			_, err := UpdateStall(ctx, w.sh, lombardia, admin, w.stalls[0].ID, StallPatch{AreaMq: Field[float64]{true, -1}})
			return err
		}, &invalid},
		{"a partita IVA taken", func() error {
			_, err := UpdateVendor(ctx, w.sh, lombardia, admin, beta, VendorPatch{PartitaIVA: Field[string]{true, "01234567897"}})
			return err
		}, &conflict},
		{"a concession of a missing vendor", func() error {
			_, err := CreateConcession(ctx, w.sh, lombardia, admin, NewConcession{MarketID: mi1, StallID: w.stalls[3].ID, VendorID: alfa + 100,
				ValidFrom: w.today, ValidTo: w.today.AddDate(1, 0, 0)})
			return err
		}, &missing},
		{"a concession on another market's stall", func() error {
			_, err := CreateConcession(ctx, w.sh, lombardia, admin, NewConcession{MarketID: w.markets["MI002"].ID, StallID: w.stalls[3].ID,
				VendorID: alfa, ValidFrom: w.today, ValidTo: w.today.AddDate(1, 0, 0)})
			return err
		}, &invalid},
		{"an overlapping concession", func() error {
			_, err := CreateConcession(ctx, w.sh, lombardia, admin, NewConcession{MarketID: mi1, StallID: w.stalls[0].ID, VendorID: gamma,
				ValidFrom: w.today, ValidTo: w.today.AddDate(1, 0, 0)})
			return err
		}, &conflict},
		{"a status a concession cannot take", func() error {
			_, err := SetConcessionStatus(ctx, w.sh, lombardia, admin, w.concessions[1].ID, "SCADUTA", "", w.today)
			return err
		}, &conflict},
		{"a second check-in of another kind", func() error {
			_, err := CheckInVendor(ctx, w.sh, lombardia, admin, CheckIn{MarketID: mi1, VendorID: gamma, Kind: "CONCESSION", Date: w.today, CheckinAt: w.today})
			return err
		}, &conflict},
		{"a check-in on a stall of another market", func() error {
			_, err := CheckInVendor(ctx, w.sh, lombardia, admin, CheckIn{MarketID: w.markets["MI002"].ID, VendorID: beta, StallID: &w.stalls[3].ID,
				Kind: "SPUNTA", Date: w.today, CheckinAt: w.today})
			return err
		}, &missing},
		{"a batch with a refused row", func() error {
			_, err := IngestPresences(ctx, w.sh, lombardia, admin, []PresenceRow{
				{MarketID: mi1, VendorID: beta, Date: w.today.AddDate(0, 0, -1), Kind: "CONCESSION"},
				{MarketID: mi1, VendorID: alfa, Date: w.today.AddDate(0, 0, -1), Kind: "SPUNTA"},
			}, w.today)
			return err
		}, &rejected},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.write()
			switch want := tt.want.(type) {
			case error:
				if !errors.Is(err, want) {
					t.Errorf("error %v, want %v", err, want)
				}
			default:
				if !errors.As(err, want) {
					t.Errorf("error %v (%T), want a %T", err, err, want)
				}
			}
		})
	}

	t.Run("patches change only what they set", func(t *testing.T) {
		m, err := UpdateMarket(ctx, w.sh, milano, admin, mi1, MarketPatch{Name: Field[string]{true, "Mercato Centrale Nuovo"}})
		want := w.markets["MI001"]
		want.Name = "Mercato Centrale Nuovo"
		if err != nil || m.Value.Name != want.Name || m.Value.Code != want.Code || m.Value.CostPerSqm != want.CostPerSqm || m.Created {
			t.Errorf("UpdateMarket = %+v, %v, want %+v", m, err, want)
		}
		s, err := UpdateStall(ctx, w.sh, lombardia, admin, w.stalls[3].ID, StallPatch{WidthM: Field[*float64]{true, float(2.5)}})
		if err != nil || s.Value.WidthM == nil || *s.Value.WidthM != 2.5 || s.Value.AreaMq != 10 {
			t.Errorf("UpdateStall width 2.5 = %+v, %v", s.Value, err)
		}
		s, err = UpdateStall(ctx, w.sh, lombardia, admin, w.stalls[3].ID, StallPatch{WidthM: Field[*float64]{true, nil}, Status: Field[string]{true, "RISERVATO"}})
		if err != nil || s.Value.WidthM != nil || s.Value.Status != "RISERVATO" {
			t.Errorf("UpdateStall width nil = %+v, %v", s.Value, err)
		}
		c, err := SetConcessionStatus(ctx, w.sh, lombardia, admin, w.concessions[1].ID, "SOSPESA", "controllo", w.today)
		if err != nil || c.Value.Status != "SOSPESA" {
			t.Errorf("SetConcessionStatus SOSPESA = %+v, %v", c.Value, err)
		}
		var audited int
		if err := w.admin.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE entity = 'concession' AND entity_id = $1
			AND action = 'status' AND after->>'reason' = 'controllo'`, w.concessions[1].ID).Scan(&audited); err != nil || audited != 1 {
			t.Errorf("audit rows of the status change: %d, %v; want 1", audited, err)
		}
	})

	t.Run("idempotency keys", func(t *testing.T) {
		kept := admin
		kept.Key, kept.Fingerprint = "k1", []byte{1}
		in := NewVendor{PartitaIVA: "00000000019", CodiceFiscale: "00000000019", Denominazione: "Delta", Comune: "015146", Status: "ATTIVA"}
		first, err := CreateVendor(ctx, w.sh, lombardia, kept, in)
		if err != nil || !first.Created || first.Replayed {
			t.Fatalf("CreateVendor with a key = %+v, %v", first, err)
		}
		again, err := CreateVendor(ctx, w.sh, lombardia, kept, in)
		if err != nil || !again.Replayed || !again.Created || !reflect.DeepEqual(again.Value, first.Value) {
			t.Errorf("CreateVendor again with the key = %+v, %v; want %+v replayed", again, err, first.Value)
		}
		kept.Fingerprint = []byte{2}
		if _, err := CreateVendor(ctx, w.sh, lombardia, kept, in); !errors.Is(err, ErrKeyReused) {
			t.Errorf("CreateVendor with the key and another request: %v, want ErrKeyReused", err)
		}
	})

	t.Run("check-in again", func(t *testing.T) {
		in := CheckIn{MarketID: mi1, VendorID: alfa, Kind: "CONCESSION", Date: w.today, CheckinAt: w.today.Add(9 * time.Hour)}
		p, err := CheckInVendor(ctx, w.sh, milano, admin, in)
		if err != nil || p.Created || p.Value.ID != w.presences[0].ID {
			t.Errorf("the same check-in again = %+v, %v; want presence %d, not created", p, err, w.presences[0].ID)
		}
	})

	t.Run("batch", func(t *testing.T) {
		yesterday := w.today.AddDate(0, 0, -1)
		rows := []PresenceRow{
			{MarketID: mi1, VendorID: alfa, Date: yesterday, Kind: "CONCESSION"},
			{MarketID: mi1, VendorID: gamma, Date: yesterday, Kind: "SPUNTA"},
			{MarketID: mi1, VendorID: gamma, Date: yesterday, Kind: "SPUNTA"},
		}
		out, err := IngestPresences(ctx, w.sh, lombardia, admin, rows, w.today)
		if want := (BatchOutcome{Rows: 3, Inserted: 2, Duplicate: 1}); err != nil || out.Value != want {
			t.Errorf("IngestPresences = %+v, %v; want %+v", out.Value, err, want)
		}
		out, err = IngestPresences(ctx, w.sh, lombardia, admin, rows[:2], w.today)
		if want := (BatchOutcome{Rows: 2, Duplicate: 2}); err != nil || out.Value != want {
			t.Errorf("IngestPresences again = %+v, %v; want %+v", out.Value, err, want)
		}
		l, err := ListPresences(ctx, w.sh, lombardia, mi1, yesterday, Page{Limit: 10})
		if err != nil || l.Total != 2 {
			t.Errorf("presences yesterday: %d, %v; want 2", l.Total, err)
		}
	})

	t.Run("spunta", func(t *testing.T) {
		// Gamma checked in as a spuntista today; the free stalls are 2
		// (occupato by status, but nobody's today) and 4 (riservato since
		// the patch above), of which 2 goes first. Gamma is authorised in
		// the stalls' sector (NON_ALIMENTARE, their default).
		authorise(t, w.admin, "NON_ALIMENTARE", gamma)
		s, err := RunSpunta(ctx, w.sh, milano, admin, mi1, SpuntaDay{Date: w.today})
		if err != nil || !s.Created || s.Value.Assigned != 1 || len(s.Value.Ranking) != 1 ||
			s.Value.Ranking[0].VendorID != gamma || *s.Value.Ranking[0].StallID != w.stalls[1].ID {
			t.Fatalf("RunSpunta = %+v, %v; want Gamma on stall 2", s, err)
		}
		again, err := RunSpunta(ctx, w.sh, milano, admin, mi1, SpuntaDay{Date: w.today})
		if err != nil || !again.Value.AlreadyRun || again.Value.Assigned != 1 || again.Created {
			t.Errorf("RunSpunta again = %+v, %v; want the first outcome", again, err)
		}
		// Today's (ASSIGNED) and yesterday's, from the batch: the ranking
		// never resets by default, so 1 January changes nothing.
		presences := int64(2)
		g, err := GetGraduatoria(ctx, w.sh, milano, mi1, GraduatoriaQuery{Kind: "SPUNTA", Date: w.today}, Page{Limit: 10})
		if err != nil || g.Total != 1 || g.Items[0].VendorID != gamma || g.Items[0].Presences != presences {
			t.Errorf("GetGraduatoria = %+v, %v; want Gamma with %d presences", g, err, presences)
		}
		if _, err := GetGraduatoria(ctx, w.sh, lazio, mi1, GraduatoriaQuery{Kind: "SPUNTA", Date: w.today}, Page{Limit: 10}); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetGraduatoria of another region's market: %v, want ErrNotFound", err)
		}
	})
}
