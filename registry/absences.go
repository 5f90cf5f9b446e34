package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// AbsenceReasons are the justifications an office may record for a
// holder's absence: illness, pregnancy, force majeure, or another reason
// its regolamento accepts (explained in the note).
var AbsenceReasons = []string{"MALATTIA", "GRAVIDANZA", "FORZA_MAGGIORE", "ALTRO"}

// Absence is one held day on which a concession's holder did not check in
// at its market, and the office's justification if it recorded one.
type Absence struct {
	Date      string  `json:"date"`
	Justified bool    `json:"justified"`
	Reason    *string `json:"reason"` // one of AbsenceReasons; null when unjustified
	Note      string  `json:"note"`
}

// Absences are a concession's absences in a calendar year, and the count
// of the unjustified ones against its market's limit (the regolamento's
// absence_limit, else the national four months): more than Limit makes the
// holder decadent (D.Lgs. 114/1998 art. 29 c.4(b)).
type Absences struct {
	ConcessionID int64     `json:"concession_id"`
	Year         int       `json:"year"`
	Limit        int       `json:"limit"`
	Unjustified  int       `json:"unjustified"`
	OverLimit    bool      `json:"over_limit"`
	Items        []Absence `json:"items"`
}

// Justification is an office's justification of a holder's absence.
type Justification struct {
	ConcessionID int64     `json:"concession_id"`
	Date         string    `json:"date"`
	Reason       string    `json:"reason"`
	Note         string    `json:"note"`
	RecordedBy   string    `json:"recorded_by"`
	RecordedAt   time.Time `json:"recorded_at"`
}

// The absences of a concession c (its id, market_id, vendor_id, valid_from
// and valid_until, the effective end of its term) come from its market's
// held days (dms.held_days): a held day is an absence when it lies within
// the term, is over (before @today, or today once the call has been made:
// until then the holder may still arrive) and the vendor has no presence
// at the market that day. concessionTermSQL selects c; absentSQL is the
// condition on a held day h.d.
const (
	concessionTermSQL = `SELECT c.id, c.market_id, c.vendor_id, c.comune, c.valid_from,
		coalesce(c.extended_to, c.valid_to) AS valid_until
	FROM concessions c WHERE c.id = @id AND c.region_id = @region`
	absentSQL = `h.d BETWEEN c.valid_from AND c.valid_until
	AND (h.d < @today::date OR EXISTS (SELECT FROM market_days md
		WHERE md.market_id = c.market_id AND md.date = h.d AND md.call_at IS NOT NULL))
	AND NOT EXISTS (SELECT FROM vendor_presences p
		WHERE p.market_id = c.market_id AND p.date = h.d AND p.vendor_id = c.vendor_id)`
)

// absencesSQL selects the absences of concession @id in year @year as
// JSON, with the year's limit; no row when the concession is not in scope.
var absencesSQL = named(`WITH c AS (` + concessionTermSQL + `
), a AS (
	SELECT h.d, j.reason, coalesce(j.note, '') AS note
	FROM c
	CROSS JOIN LATERAL dms.held_days(c.market_id, greatest(c.valid_from, make_date(@year, 1, 1)),
		least(c.valid_until, make_date(@year, 12, 31), @today::date)) h (d)
	LEFT JOIN absence_justifications j ON j.concession_id = c.id AND j.date = h.d
	WHERE ` + absentSQL + `
)
SELECT dms.absence_limit(c.market_id, @year), (SELECT count(*) FROM a WHERE a.reason IS NULL)::int,
	(SELECT coalesce(json_agg(json_build_object('date', to_char(a.d, 'YYYY-MM-DD'), 'justified', a.reason IS NOT NULL,
		'reason', a.reason, 'note', a.note) ORDER BY a.d), '[]') FROM a)
FROM c`)

// ListAbsences returns the absences of concession id in scope sc in
// calendar year (counted up to today, the day in Europe/Rome), or
// ErrNotFound when the concession is not in scope.
func ListAbsences(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, id int64, year int, today time.Time) (Absences, error) {
	out := Absences{ConcessionID: id, Year: year}
	a := scopeArgs(sc)
	a["id"], a["year"], a["today"] = id, year, today
	found := false
	var items []byte
	// No date of the statement prunes the presences' partitions when it is
	// planned (the held days come from a function), so a custom plan plans
	// all of them at every run: about 20 ms at 84 monthly partitions,
	// against 3 ms to run the generic plan.
	err := sh.ReadGeneric(ctx, sc, func(b *pgx.Batch) {
		absencesSQL.queue(b, a).Query(func(rows pgx.Rows) error {
			defer rows.Close()
			if found = rows.Next(); found {
				if err := rows.Scan(&out.Limit, &out.Unjustified, &items); err != nil {
					return err
				}
			}
			return rows.Err()
		})
	})
	if err != nil {
		return out, err
	}
	if !found {
		return out, ErrNotFound
	}
	if err := json.Unmarshal(items, &out.Items); err != nil {
		return out, fmt.Errorf("decode absences: %w", err)
	}
	out.OverLimit = out.Unjustified > out.Limit
	return out, nil
}

// justificationJSON is justification j as JSON, the way Justification
// decodes it.
const justificationJSON = `json_build_object('concession_id', j.concession_id, 'date', to_char(j.date, 'YYYY-MM-DD'),
	'reason', j.reason, 'note', j.note, 'recorded_by', j.recorded_by,
	'recorded_at', to_char(j.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))`

// justifySQL justifies the absence of concession @id on @date with
// @reason and @note, audited, when that day is an absence; it selects why
// not (absenceCode), whether it replaced a justification, and the
// justification as JSON.
var justifySQL = named(`WITH c AS (` + concessionTermSQL + `
), v AS (
	SELECT ` + absenceCodeSQL + ` AS code FROM (SELECT @date::date AS d) h LEFT JOIN c ON true
), old AS (
	SELECT j.* FROM absence_justifications j WHERE j.concession_id = @id AND j.date = @date::date FOR UPDATE
), up AS (
	INSERT INTO absence_justifications (concession_id, date, region_id, market_id, comune, reason, note, recorded_by)
	SELECT c.id, @date, @region, c.market_id, c.comune, @reason, @note, @user FROM c, v WHERE v.code IS NULL
	ON CONFLICT (concession_id, date) DO UPDATE SET reason = EXCLUDED.reason, note = EXCLUDED.note,
		recorded_by = EXCLUDED.recorded_by, recorded_at = now()
	RETURNING absence_justifications.*
), ` + auditCTE("audit", "justify", "absence", "n.concession_id, to_jsonb(o), to_jsonb(n) FROM up n LEFT JOIN old o ON true") + `
SELECT v.code, EXISTS (SELECT FROM old), (SELECT ` + justificationJSON + ` FROM up j) FROM v`)

// absenceCodeSQL says why held day h.d is not an absence of concession c
// (NULL when it is one): no such concession, a day outside its term, a day
// not over yet, a day the market was not held, or a day the holder was
// present.
const absenceCodeSQL = `CASE
	WHEN c.id IS NULL THEN 'concession'
	WHEN h.d NOT BETWEEN c.valid_from AND c.valid_until THEN 'term'
	WHEN h.d >= @today::date AND NOT EXISTS (SELECT FROM market_days md
		WHERE md.market_id = c.market_id AND md.date = h.d AND md.call_at IS NOT NULL) THEN 'not_over'
	WHEN NOT EXISTS (SELECT FROM dms.held_days(c.market_id, h.d, h.d)) THEN 'not_held'
	WHEN NOT (` + absentSQL + `) THEN 'present'
END`

// absenceError is the error of an absenceCodeSQL code for day.
func absenceError(code string, day time.Time) error {
	date := day.Format(time.DateOnly)
	switch code {
	case "concession":
		return ErrNotFound
	case "term":
		return &InvalidError{Field: "date", Reason: "outside the concession's term"}
	case "not_over":
		return conflict("the call of %s has not been made: the holder may still arrive", date)
	case "not_held":
		return conflict("the market was not held on %s (cancelled, or no record and no presences): there is no absence", date)
	case "present":
		return conflict("the holder was present at the market on %s: there is no absence", date)
	}
	return fmt.Errorf("absence code %q", code)
}

// JustifyAbsence records in scope sc the office's justification of the
// absence of concession id's holder on day, audited, replacing one
// recorded before (the result is created when there was none). The day
// must be an absence: a day outside the concession's term is an
// *InvalidError; one not over yet, not held, or on which the holder was
// present a *ConflictError. A concession not in scope is ErrNotFound.
func JustifyAbsence(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, id int64, day, today time.Time, reason, note string) (Result[Justification], error) {
	a := writeArgs(sc, w, pgx.NamedArgs{"id": id, "date": day, "today": today, "reason": reason, "note": note})
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Justification, bool, error) {
		var (
			code    *string
			existed bool
			body    []byte
		)
		if err := justifySQL.queryRow(ctx, tx, a).Scan(&code, &existed, &body); err != nil {
			return Justification{}, false, err
		}
		if code != nil {
			return Justification{}, false, absenceError(*code, day)
		}
		j, err := decodeJustification(body)
		return j, !existed, err
	})
}

// unjustifySQL deletes the justification of concession @id on @date,
// audited, and selects it as JSON.
var unjustifySQL = named(`WITH del AS (
	DELETE FROM absence_justifications WHERE concession_id = @id AND date = @date::date AND region_id = @region
	RETURNING *
), ` + auditCTE("audit", "unjustify", "absence", "o.concession_id, to_jsonb(o), NULL FROM del o") + `
SELECT ` + justificationJSON + ` FROM del j`)

// UnjustifyAbsence removes in scope sc the justification of the absence of
// concession id's holder on day, audited, and returns it: the absence
// counts against the limit again. No such justification in scope is
// ErrNotFound.
func UnjustifyAbsence(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, id int64, day time.Time) (Result[Justification], error) {
	a := writeArgs(sc, w, pgx.NamedArgs{"id": id, "date": day})
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Justification, bool, error) {
		rows, err := unjustifySQL.query(ctx, tx, a)
		if err != nil {
			return Justification{}, false, err
		}
		body, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[[]byte])
		if errors.Is(err, pgx.ErrNoRows) {
			return Justification{}, false, ErrNotFound
		}
		if err != nil {
			return Justification{}, false, err
		}
		j, err := decodeJustification(body)
		return j, false, err
	})
}

func decodeJustification(b []byte) (Justification, error) {
	var j Justification
	if err := json.Unmarshal(b, &j); err != nil {
		return j, fmt.Errorf("decode justification: %w", err)
	}
	return j, nil
}
