package registry

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Transfer is a subingresso: the business holding a concession is sold to
// BuyerID, who takes over the title from Date.
type Transfer struct {
	BuyerID int64
	Date    time.Time
}

// The statements of Subingresso: subingressoTitleSQL reads and locks
// concession @id; the buyer's grants are serialised by the lock every
// grant takes (lockVendorGrantsSQL, in a statement of its own so that the
// next one's snapshot sees what the lock waited for);
// subingressoBuyerSQL reads the buyer's status, counts the concessions it
// holds at the market in the sector, ATTIVA or SOSPESA, whose terms
// overlap the new one from @from to @end, and the market's stalls (for its
// cap); subingressoSQL closes the old concession and creates the new one,
// each with its audit row.
var (
	subingressoTitleSQL = named(`SELECT c.status, c.vendor_id, c.valid_from, c.valid_to, c.extended_to
		FROM concessions c WHERE c.id = @id AND c.region_id = @region FOR UPDATE`)
	subingressoBuyerSQL = named(`SELECT v.status,
			(SELECT count(*) FROM concessions o, concessions c
			 WHERE c.id = @id AND o.vendor_id = v.id AND o.market_id = c.market_id AND o.sector = c.sector
			   AND o.status IN ('ATTIVA', 'SOSPESA')
			   AND daterange(o.valid_from, coalesce(o.extended_to, o.valid_to), '[]') && daterange(@from::date, @end::date, '[]')),
			(SELECT count(*) FROM stalls s, concessions c WHERE c.id = @id AND s.market_id = c.market_id)
		FROM vendors v WHERE v.id = @buyer AND v.region_id = @region`)
	subingressoSQL = named(`WITH old AS (
		SELECT * FROM concessions WHERE id = @id AND region_id = @region
	), closed AS (
		UPDATE concessions t SET status = 'CESSATA' FROM old WHERE t.id = old.id RETURNING t.*
	), ` + auditCTE("closed_audit", "status", "concession",
		`n.id, to_jsonb(o), to_jsonb(n) || jsonb_build_object('reason', 'subingresso: the title passes to vendor ' || @buyer::bigint || ' from ' || @from::date)
		FROM old o JOIN closed n ON n.id = o.id`) + `, ins AS (
		INSERT INTO concessions (id, region_id, market_id, comune, stall_id, vendor_id, valid_from, valid_to, extended_to, status,
			sector, title_id, follows_id, follows_by)
		SELECT dms.next_id('concessions', @region::smallint), o.region_id, o.market_id, o.comune, o.stall_id, @buyer, @from, @to, @extended_to,
			'ATTIVA', o.sector, o.title_id, o.id, 'SUBINGRESSO'
		FROM closed o -- after the close: the stall holds one concession at a time
		RETURNING *
	), ` + auditCTE("audit", "create", "concession", "n.id, NULL, to_jsonb(n) FROM ins n") + `
	SELECT ` + concessionCols + ` FROM ins c`)
)

// Subingresso passes concession id's title to the buyer of the business,
// in one transaction: the concession becomes CESSATA and a new ATTIVA one,
// on the same stall, sector and title, following it (follows_by
// SUBINGRESSO), runs for the buyer from t.Date to the old term's end (with
// its legal extension), each audited. The presences earned under the title
// go with it (TitleRanking). It returns the new concession.
//
// A concession not in scope is ErrNotFound, a buyer not in the region a
// *MissingError, the seller as buyer or a date after today an
// *InvalidError. These are *ConflictError with their rule: a title that is
// not ATTIVA or SOSPESA, or a date outside its term, or on its last day
// (title-ended); a buyer that is not ATTIVA (buyer-not-active); a buyer
// who already holds the most concessions the law allows at the market in
// the sector (concession-cap: 2, or 3 where the market has more than 100
// stalls).
func Subingresso(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, id int64, t Transfer, today time.Time) (Result[Concession], error) {
	if t.Date.After(today) {
		return Result[Concession]{}, &InvalidError{Field: "date", Reason: "a subingresso takes effect on a day up to today, not after"}
	}
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Concession, bool, error) {
		var (
			status       string
			seller       int64
			from, to     time.Time
			extended     *time.Time
			buyerStatus  *string
			held, stalls int
		)
		a := writeArgs(sc, w, pgx.NamedArgs{"id": id, "buyer": t.BuyerID, "from": t.Date})
		err := subingressoTitleSQL.queryRow(ctx, tx, a).Scan(&status, &seller, &from, &to, &extended)
		if errors.Is(err, pgx.ErrNoRows) {
			return Concession{}, false, ErrNotFound
		}
		if err != nil {
			return Concession{}, false, err
		}
		end := to
		if extended != nil {
			end = *extended
		}
		switch {
		case status != "ATTIVA" && status != "SOSPESA":
			return Concession{}, false, ruleConflict("title-ended", "the concession is %s: only an ATTIVA or SOSPESA title passes to a buyer", status)
		case t.Date.Before(from) || !t.Date.Before(end):
			return Concession{}, false, ruleConflict("title-ended", "the title runs from %s to %s: a subingresso takes effect from the first day to the day before the last",
				from.Format(time.DateOnly), end.Format(time.DateOnly))
		case t.BuyerID == seller:
			return Concession{}, false, &InvalidError{Field: "vendor_id", Reason: "the buyer is the concession's holder"}
		}
		a["end"], a["vendor"] = end, t.BuyerID
		if _, err := lockVendorGrantsSQL.exec(ctx, tx, a); err != nil {
			return Concession{}, false, err
		}
		err = subingressoBuyerSQL.queryRow(ctx, tx, a).Scan(&buyerStatus, &held, &stalls)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return Concession{}, false, &MissingError{Field: "vendor_id"}
		case err != nil:
			return Concession{}, false, err
		case *buyerStatus != "ATTIVA":
			return Concession{}, false, ruleConflict("buyer-not-active", "the buyer is %s: only an ATTIVA business takes over a title", *buyerStatus)
		case held >= concessionLimit(stalls):
			return Concession{}, false, ruleConflict("concession-cap",
				"the buyer already holds %d concessions at this market in the sector, the most the law allows at a market of %d stalls", held, stalls)
		}
		// The new term ends where the title's does. Taking effect after
		// the printed end, within a legal extension, the extension is the
		// new concession's own term.
		a["to"], a["extended_to"] = to, extended
		if !t.Date.Before(to) {
			a["to"], a["extended_to"] = end, nil
		}
		rows, err := subingressoSQL.query(ctx, tx, a)
		c, err := collectOne[Concession](rows, err)
		return c, true, err
	})
}
