package registry

import (
	"context"
	"errors"
	"testing"
)

// TestDecadenza follows a holder's decadenza in Milano's Mercato Centrale:
// the office cannot declare Alfa's concession DECADUTA before the
// lifecycle job proposes it (rule not-proposed); once proposed, it can,
// with an audit row; a DECADUTA concession is final. Beta's title, whose
// printed term ended but which the law extended, can still be reactivated.
func TestDecadenza(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, "decadenza")
	alfa, beta := w.concessions[0].ID, w.concessions[1].ID
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := w.admin.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name   string
		before string // SQL run first as the owner, with $1 = id
		id     int64
		status string
		rule   string // "" succeeds; "-" a conflict without a rule
	}{
		{"DECADUTA without a proposal", "", alfa, "DECADUTA", "not-proposed"},
		{"SCADUTA by hand", "", alfa, "SCADUTA", "-"},
		{"DECADUTA once proposed", `UPDATE concessions SET decadenza_proposed_on = current_date, decadenza_absences = 40 WHERE id = $1`, alfa, "DECADUTA", ""},
		{"DECADUTA is final", "", alfa, "ATTIVA", "-"},
		{"suspended", "", beta, "SOSPESA", ""},
		{"reactivated after its printed end, within the legal extension",
			`UPDATE concessions SET valid_to = current_date - 1, extended_to = current_date + 30 WHERE id = $1`, beta, "ATTIVA", ""},
		{"suspended again", "", beta, "SOSPESA", ""},
		{"not reactivated after the extension ended", `UPDATE concessions SET extended_to = current_date - 1, valid_to = current_date - 2 WHERE id = $1`, beta, "ATTIVA", "-"},
	}
	for _, s := range steps {
		if s.before != "" {
			exec(s.before, s.id)
		}
		r, err := SetConcessionStatus(ctx, w.sh, lombardia, admin, s.id, s.status, "assenze non giustificate", w.today)
		var c *ConflictError
		switch {
		case s.rule == "" && err != nil:
			t.Errorf("%s: %v, want it done", s.name, err)
		case s.rule == "" && r.Value.Status != s.status:
			t.Errorf("%s: status %s, want %s", s.name, r.Value.Status, s.status)
		case s.rule != "" && !errors.As(err, &c):
			t.Errorf("%s: %v, want a conflict", s.name, err)
		case s.rule != "" && s.rule != "-" && c.Rule != s.rule:
			t.Errorf("%s: rule %q, want %q", s.name, c.Rule, s.rule)
		}
	}
	var n int
	if err := w.admin.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE entity = 'concession' AND entity_id = $1 AND action = 'status'
		AND before->>'status' = 'ATTIVA' AND after->>'status' = 'DECADUTA' AND after->>'reason' = 'assenze non giustificate'`, alfa).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d audit rows of Alfa's decadenza, want 1", n)
	}
}
