package registry

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/regions"
)

// TestAbsences is the dayBook's holder Rossi, as the comune counts toward
// decadenza: absent on the five held Mondays m[3] to m[7] (m[2] was
// cancelled, and counts for nobody), two of them justified by illness
// (MALATTIA), so three count; under a regolamento that allows three the
// count is at the limit, and once a justification is withdrawn it is over.
func TestAbsences(t *testing.T) {
	ctx := context.Background()
	d := newDayBook(t, "absences")
	date := func(i int) string { return d.m[i].Format(time.DateOnly) }
	list := func(t *testing.T) Absences {
		t.Helper()
		return must(ListAbsences(ctx, d.sh, milano, d.conc, d.year, d.today))(t)
	}
	var (
		conflict *ConflictError
		invalid  *InvalidError
	)

	a := list(t)
	var got []string
	for _, it := range a.Items {
		got = append(got, it.Date)
	}
	if want := []string{date(3), date(4), date(5), date(6), date(7)}; !slices.Equal(got, want) || a.Unjustified != 5 {
		t.Fatalf("absences = %v (%d unjustified), want %v, all unjustified", got, a.Unjustified, want)
	}
	if a.Limit != 17 || a.OverLimit { // a third of the year's 52 or 53 Mondays
		t.Errorf("national limit = %d (over %v), want 17, not over", a.Limit, a.OverLimit)
	}

	for _, i := range []int{3, 4} {
		j := must(JustifyAbsence(ctx, d.sh, milano, admin, d.conc, d.m[i], d.today, "MALATTIA", "certificato medico"))(t)
		if !j.Created || j.Value.Reason != "MALATTIA" || j.Value.Date != date(i) || j.Value.RecordedBy != "tester" {
			t.Errorf("JustifyAbsence %s = %+v", date(i), j)
		}
	}
	again := must(JustifyAbsence(ctx, d.sh, milano, admin, d.conc, d.m[4], d.today, "MALATTIA", "certificato medico n. 1234"))(t)
	if again.Created || again.Value.Note != "certificato medico n. 1234" {
		t.Errorf("a justification replaced = %+v, want not created, the new note", again)
	}
	a = list(t)
	if a.Unjustified != 3 || !a.Items[0].Justified || a.Items[0].Reason == nil || *a.Items[0].Reason != "MALATTIA" || a.Items[2].Justified {
		t.Errorf("absences with two justified = %+v, want 3 unjustified", a)
	}

	// The regolamento allows three unjustified absences a year.
	if _, err := d.admin.Exec(ctx, `INSERT INTO market_regolamenti (market_id, region_id, comune, absence_limit) VALUES ($1, 3, '015146', 3)`, d.market); err != nil {
		t.Fatal(err)
	}
	if a = list(t); a.Limit != 3 || a.Unjustified != 3 || a.OverLimit {
		t.Errorf("at the regolamento's limit: limit %d, unjustified %d, over %v; want 3, 3, false", a.Limit, a.Unjustified, a.OverLimit)
	}
	j := must(UnjustifyAbsence(ctx, d.sh, milano, admin, d.conc, d.m[3]))(t)
	if j.Value.Date != date(3) || j.Value.Reason != "MALATTIA" {
		t.Errorf("UnjustifyAbsence = %+v, want the removed justification", j.Value)
	}
	if a = list(t); a.Unjustified != 4 || !a.OverLimit {
		t.Errorf("a justification withdrawn: unjustified %d, over %v; want 4, true", a.Unjustified, a.OverLimit)
	}
	// The lifecycle job (migration 00015) counts the same absences, by
	// its own set-based SQL: run on the next 1 January (the whole year
	// counts), it proposes the holder for decadenza with 4.
	var proposed *int
	if _, err := d.admin.Exec(ctx, `SELECT * FROM dms.concession_lifecycle($1, '[]')`, time.Date(d.year+1, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if err := d.admin.QueryRow(ctx, `SELECT decadenza_absences FROM concessions WHERE id = $1`, d.conc).Scan(&proposed); err != nil || proposed == nil || *proposed != a.Unjustified {
		t.Errorf("the lifecycle job's count of unjustified absences = %v, %v; want ListAbsences's %d", proposed, err, a.Unjustified)
	}
	var n int
	if err := d.admin.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE entity = 'absence' AND entity_id = $1`, d.conc).Scan(&n); err != nil || n != 4 {
		t.Errorf("audit rows of the justifications = %d, %v; want 4", n, err)
	}

	for _, tt := range []struct {
		name string
		day  time.Time
		want any
	}{
		{"a day the holder was present", d.m[0], &conflict},
		{"the cancelled day", d.m[2], &conflict},
		{"a day the market was not held", d.m[0].AddDate(0, 0, 1), &conflict},
		{"a day before the concession", time.Date(d.year-1, 12, 28, 0, 0, 0, 0, time.UTC), &invalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := JustifyAbsence(ctx, d.sh, milano, admin, d.conc, tt.day, d.today, "FORZA_MAGGIORE", "")
			if !errors.As(err, tt.want) {
				t.Errorf("JustifyAbsence %s: %v (%T), want a %T", tt.day.Format(time.DateOnly), err, err, tt.want)
			}
		})
	}
	if _, err := UnjustifyAbsence(ctx, d.sh, milano, admin, d.conc, d.m[5]); !errors.Is(err, ErrNotFound) {
		t.Errorf("UnjustifyAbsence of an unjustified day: %v, want ErrNotFound", err)
	}
	bergamo := regions.Scope{Region: "03", Province: "016", Comune: "016024", User: "tester"}
	if _, err := ListAbsences(ctx, d.sh, bergamo, d.conc, d.year, d.today); !errors.Is(err, ErrNotFound) {
		t.Errorf("ListAbsences outside the scope: %v, want ErrNotFound", err)
	}
}
