package registry

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// marketOfStalls creates a market of n FISSO, NON_ALIMENTARE stalls in
// Milano and returns it with its stalls' ids by number (index 0: stall 1).
func marketOfStalls(t *testing.T, w *world, code string, n int) (Market, []int64) {
	t.Helper()
	ctx := context.Background()
	m := must(CreateMarket(ctx, w.sh, lombardia, admin, NewMarket{Code: code, Name: "Mercato " + code, Comune: "015146",
		ComuneName: "Milano", Days: []int16{2}, Status: "ACTIVE"}))(t).Value
	if _, err := w.admin.Exec(ctx, `INSERT INTO stalls (id, region_id, market_id, comune, number, type, status, area_mq)
		SELECT dms.next_id('stalls', 3::smallint), 3, $1, '015146', g, 'FISSO', 'LIBERO', 10 FROM generate_series(1, $2) g`, m.ID, n); err != nil {
		t.Fatal(err)
	}
	rows, err := w.admin.Query(ctx, `SELECT id FROM stalls WHERE market_id = $1 ORDER BY number`, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	var stalls []int64
	for rows.Next() {
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stalls = append(stalls, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m, stalls
}

// wantRule fails t unless err is a *ConflictError of rule (any conflict
// for rule "").
func wantRule(t *testing.T, what string, err error, rule string) {
	t.Helper()
	var c *ConflictError
	if !errors.As(err, &c) || c.Rule != rule {
		t.Errorf("%s: %v, want a conflict with rule %q", what, err, rule)
	}
}

// TestConcessionRules runs the worked examples of the rules of a grant:
// the cap per vendor, market and sector, the stall's sector, a SOSPESA
// holder keeping its stall, and the renewal of a title.
func TestConcessionRules(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "concession_rules")
	gamma, beta := w.vendors["Gamma Spa"].ID, w.vendors["Beta di Mario Rossi"].ID
	from, to := w.today, w.today.AddDate(10, 0, -1)
	grant := func(m Market, stall, vendor int64, sector string) (Concession, error) {
		c, err := CreateConcession(ctx, w.sh, milano, admin, NewConcession{MarketID: m.ID, StallID: stall, VendorID: vendor,
			ValidFrom: from, ValidTo: to, Sector: sector})
		return c.Value, err
	}

	t.Run("cap", func(t *testing.T) {
		// Gamma holds two NON_ALIMENTARE posteggi at a market of 60: a
		// third is refused; one at a market of 101 stalls is its third
		// there, allowed, and a fourth is refused.
		small, s60 := marketOfStalls(t, w, "MI060", 60)
		big, s101 := marketOfStalls(t, w, "MI101", 101)
		must(UpdateStall(ctx, w.sh, milano, admin, s60[3], StallPatch{Sector: Field[string]{true, "ALIMENTARE"}}))(t)
		for _, step := range []struct {
			what   string
			m      Market
			stall  int64
			vendor int64
			rule   string // "-": granted
		}{
			{"first at 60", small, s60[0], gamma, "-"},
			{"second at 60", small, s60[1], gamma, "-"},
			{"third at 60", small, s60[2], gamma, "concession-cap"},
			{"another vendor's third stall at 60", small, s60[2], beta, "-"},
			{"an ALIMENTARE one at 60, another sector", small, s60[3], gamma, "-"},
			{"first at 101", big, s101[0], gamma, "-"},
			{"second at 101", big, s101[1], gamma, "-"},
			{"third at 101", big, s101[2], gamma, "-"},
			{"fourth at 101", big, s101[3], gamma, "concession-cap"},
		} {
			c, err := grant(step.m, step.stall, step.vendor, "")
			if step.rule == "-" {
				if err != nil || c.Status != "ATTIVA" || c.TitleID != c.ID || c.FollowsID != nil {
					t.Errorf("%s: %+v, %v; want an ATTIVA concession, its own title", step.what, c, err)
				}
				continue
			}
			wantRule(t, step.what, err, step.rule)
		}
		// A term after the two held ends is within the cap.
		later, err := CreateConcession(ctx, w.sh, milano, admin, NewConcession{MarketID: small.ID, StallID: s60[4], VendorID: gamma,
			ValidFrom: to.AddDate(0, 0, 1), ValidTo: to.AddDate(10, 0, 0)})
		if err != nil {
			t.Errorf("a third concession after the term of the two held: %v", err)
		}
		// A REVOCATA one no longer counts.
		must(SetConcessionStatus(ctx, w.sh, milano, admin, later.Value.ID, "REVOCATA", "rinuncia", w.today))(t)
	})

	t.Run("sector", func(t *testing.T) {
		m, stalls := marketOfStalls(t, w, "MI010", 10)
		_, err := grant(m, stalls[0], gamma, "ALIMENTARE")
		wantRule(t, "an ALIMENTARE concession on a NON_ALIMENTARE stall", err, "sector-mismatch")
		c, err := grant(m, stalls[0], gamma, "NON_ALIMENTARE")
		if err != nil || c.Sector != "NON_ALIMENTARE" {
			t.Errorf("the stall's sector named: %+v, %v", c, err)
		}
		_, err = UpdateStall(ctx, w.sh, milano, admin, stalls[0], StallPatch{Sector: Field[string]{true, "ALIMENTARE"}})
		wantRule(t, "a held stall changing sector", err, "sector-mismatch")
		must(UpdateRegolamento(ctx, w.sh, milano, admin, m.ID, RegolamentoPatch{Sectors: Field[bool]{true, false}}))(t)
		c, err = grant(m, stalls[1], gamma, "ALIMENTARE")
		if err != nil || c.Sector != "ALIMENTARE" {
			t.Errorf("another sector where sectors do not apply: %+v, %v", c, err)
		}
		s, err := UpdateStall(ctx, w.sh, milano, admin, stalls[0], StallPatch{Sector: Field[string]{true, "ALIMENTARE"}, ReservedFor: Field[*string]{true, ptr("PRODUTTORE")}})
		if err != nil || s.Value.Sector != "ALIMENTARE" || s.Value.ReservedFor == nil || *s.Value.ReservedFor != "PRODUTTORE" {
			t.Errorf("a held stall changing sector where sectors do not apply: %+v, %v", s.Value, err)
		}
		au := must(ListAuthorisations(ctx, w.sh, milano, gamma))(t)
		var sectors []string
		for _, a := range au.Items {
			if a.Type == "A" && a.Comune == "015146" {
				sectors = append(sectors, a.Sector)
			}
		}
		if !slices.Equal(sectors, []string{"ALIMENTARE", "NON_ALIMENTARE"}) {
			t.Errorf("Gamma's type A authorisations from Milano = %+v, want one per sector of its concessions", au.Items)
		}
	})

	t.Run("a SOSPESA holder keeps its stall", func(t *testing.T) {
		m, stalls := marketOfStalls(t, w, "MI011", 5)
		c := must(grant(m, stalls[0], beta, ""))(t)
		must(SetConcessionStatus(ctx, w.sh, milano, admin, c.ID, "SOSPESA", "DURC", w.today))(t)
		_, err := grant(m, stalls[0], gamma, "")
		wantRule(t, "a concession over a SOSPESA holder", err, "")
	})

	t.Run("renewal", func(t *testing.T) {
		m, stalls := marketOfStalls(t, w, "MI012", 5)
		first := must(grant(m, stalls[0], beta, ""))(t)
		r, err := RenewConcession(ctx, w.sh, milano, admin, first.ID, Renewal{ValidTo: to.AddDate(10, 0, 0)})
		want := to.AddDate(0, 0, 1).Format(time.DateOnly)
		if err != nil || !r.Created || r.Value.TitleID != first.ID || r.Value.FollowsID == nil || *r.Value.FollowsID != first.ID ||
			r.Value.FollowsBy == nil || *r.Value.FollowsBy != "RENEWAL" || r.Value.ValidFrom != want ||
			r.Value.StallID != first.StallID || r.Value.VendorID != beta || r.Value.Sector != first.Sector {
			t.Fatalf("RenewConcession = %+v, %v; want title %d from %s", r.Value, err, first.ID, want)
		}
		again, err := RenewConcession(ctx, w.sh, milano, admin, r.Value.ID, Renewal{ValidTo: to.AddDate(20, 0, 0)})
		if err != nil || again.Value.TitleID != first.ID {
			t.Errorf("the renewal renewed = %+v, %v; want title %d", again.Value, err, first.ID)
		}
		_, err = RenewConcession(ctx, w.sh, milano, admin, first.ID, Renewal{ValidTo: to.AddDate(30, 0, 0)})
		wantRule(t, "a second renewal of the same period", err, "")
		var invalid *InvalidError
		_, err = RenewConcession(ctx, w.sh, milano, admin, first.ID, Renewal{ValidFrom: to, ValidTo: to.AddDate(5, 0, 0)})
		if !errors.As(err, &invalid) || invalid.Field != "valid_from" {
			t.Errorf("a renewal starting before the end: %v, want an invalid valid_from", err)
		}
		must(SetConcessionStatus(ctx, w.sh, milano, admin, again.Value.ID, "REVOCATA", "x", w.today))(t)
		_, err = RenewConcession(ctx, w.sh, milano, admin, again.Value.ID, Renewal{ValidTo: to.AddDate(40, 0, 0)})
		wantRule(t, "a REVOCATA concession renewed", err, "")
		if _, err := RenewConcession(ctx, w.sh, lazio, admin, first.ID, Renewal{ValidTo: to.AddDate(40, 0, 0)}); !errors.Is(err, ErrNotFound) {
			t.Errorf("a renewal outside the scope: %v, want ErrNotFound", err)
		}
		var audited int
		if err := w.admin.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE entity = 'concession' AND action = 'renewal' AND entity_id = $1`,
			r.Value.ID).Scan(&audited); err != nil || audited != 1 {
			t.Errorf("audit rows of the renewal: %d, %v; want 1", audited, err)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestRegolamento changes a market's regolamento and reads it back with
// the market.
func TestRegolamento(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "regolamento")
	mi1 := w.markets["MI001"].ID
	m := must(GetMarket(ctx, w.sh, milano, mi1))(t)
	if r := m.Regolamento; r.Own || r.RankingReset != "NEVER" || !slices.Equal(r.TieBreaks, []string{"REGISTRATION", "DRAW"}) ||
		!r.Sectors || r.CallTime != "08:00" || r.AbsenceLimit != nil || r.CurrentAbsenceLimit < 34 {
		t.Errorf("the national defaults = %+v", r)
	}
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	r, err := UpdateRegolamento(ctx, w.sh, milano, admin, mi1, RegolamentoPatch{
		RankingReset: Field[string]{true, "YEARLY"}, RankingFrom: Field[*time.Time]{true, &from},
		TieBreaks: Field[[]string]{true, []string{"FIRST_PRESENCE", "REGISTRATION", "DRAW"}}, CallTime: Field[string]{true, "07:30"},
		AbsenceLimit: Field[*int32]{true, ptr[int32](12)}})
	if err != nil || !r.Value.Own || r.Value.RankingReset != "YEARLY" || *r.Value.RankingFrom != "2024-01-01" || r.Value.CallTime != "07:30" ||
		*r.Value.AbsenceLimit != 12 || r.Value.CurrentAbsenceLimit != 12 || !r.Value.Sectors || len(r.Value.TieBreaks) != 3 {
		t.Fatalf("UpdateRegolamento = %+v, %v", r.Value, err)
	}
	r, err = UpdateRegolamento(ctx, w.sh, milano, admin, mi1, RegolamentoPatch{AbsenceLimit: Field[*int32]{Set: true}})
	if err != nil || r.Value.AbsenceLimit != nil || r.Value.CallTime != "07:30" || r.Value.CurrentAbsenceLimit < 34 {
		t.Errorf("UpdateRegolamento back to the national limit = %+v, %v", r.Value, err)
	}
	m = must(GetMarket(ctx, w.sh, milano, mi1))(t)
	if m.Regolamento.RankingReset != "YEARLY" || m.Regolamento.AbsenceLimit != nil {
		t.Errorf("GetMarket after the patches = %+v", m.Regolamento)
	}
	var audited int
	if err := w.admin.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE entity = 'regolamento' AND entity_id = $1`, mi1).Scan(&audited); err != nil || audited != 2 {
		t.Errorf("audit rows of the regolamento: %d, %v; want 2", audited, err)
	}
	if _, err := UpdateRegolamento(ctx, w.sh, milano, admin, w.markets["BG001"].ID, RegolamentoPatch{Sectors: Field[bool]{true, false}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateRegolamento outside the scope: %v, want ErrNotFound", err)
	}
}

// TestAuthorisations records a vendor's authorisations and lists them.
func TestAuthorisations(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "authorisations")
	beta := w.vendors["Beta di Mario Rossi"].ID
	issued := time.Date(2019, 3, 1, 0, 0, 0, 0, time.UTC)
	in := NewAuthorisation{Type: "B", Sector: "ALIMENTARE", Comune: "058091", Number: "123/2019", IssuedOn: &issued}
	a, err := CreateAuthorisation(ctx, w.sh, milano, admin, beta, in)
	if err != nil || !a.Created || a.Value.VendorID != beta || a.Value.IssuedOn == nil || *a.Value.IssuedOn != "2019-03-01" {
		t.Fatalf("CreateAuthorisation = %+v, %v", a, err)
	}
	_, err = CreateAuthorisation(ctx, w.sh, milano, admin, beta, in)
	wantRule(t, "the same authorisation again", err, "")
	if _, err := CreateAuthorisation(ctx, w.sh, lazio, admin, beta, in); !errors.Is(err, ErrNotFound) {
		t.Errorf("CreateAuthorisation in another region: %v, want ErrNotFound", err)
	}
	l, err := ListAuthorisations(ctx, w.sh, milano, beta)
	// Beta's concession on stall 2 of MI001 gave it a type A one.
	if err != nil || len(l.Items) != 2 || l.Items[0].Type != "A" || l.Items[1].ID != a.Value.ID {
		t.Errorf("ListAuthorisations = %+v, %v", l, err)
	}
	if _, err := ListAuthorisations(ctx, w.sh, lazio, beta); !errors.Is(err, ErrNotFound) {
		t.Errorf("ListAuthorisations in another region: %v, want ErrNotFound", err)
	}
}
