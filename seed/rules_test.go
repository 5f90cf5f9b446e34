package seed_test

import (
	"testing"
)

// checkMarketDayRules checks that the seeded data follows the market-day
// rules of docs/domain.md (issue 13) as the API would have enforced them,
// and has the shape of real markets.
func checkMarketDayRules(t *testing.T, d *db) {
	t.Run("no row breaks a rule", func(t *testing.T) {
		none(t, d, "rows", map[string]string{
			"concession of another sector than its stall": `SELECT count(*) FROM concessions c JOIN stalls s ON s.id = c.stall_id WHERE c.sector <> s.sector`,
			"concessions over the cap per vendor, market and sector": `SELECT count(*) FROM (
				SELECT FROM concessions c JOIN markets m ON m.id = c.market_id
				WHERE c.status IN ('ATTIVA', 'SOSPESA')
				GROUP BY c.vendor_id, c.market_id, c.sector
				HAVING count(*) > CASE WHEN max((SELECT count(*) FROM stalls WHERE market_id = m.id)) > 100 THEN 3 ELSE 2 END) x`,
			"concession without an A authorisation": `SELECT count(*) FROM concessions c WHERE c.status IN ('ATTIVA', 'SOSPESA')
				AND NOT EXISTS (SELECT FROM authorisations a WHERE a.vendor_id = c.vendor_id AND a.type = 'A' AND a.sector = c.sector AND a.comune = c.comune)`,
			"spuntista unauthorised in its stall's sector": `SELECT count(*) FROM vendor_presences p JOIN stalls s ON s.id = p.stall_id
				WHERE p.kind = 'SPUNTA' AND NOT EXISTS (SELECT FROM authorisations a WHERE a.vendor_id = p.vendor_id AND a.sector = s.sector)`,
			"spuntista without any authorisation": `SELECT count(*) FROM vendor_presences p
				WHERE p.kind = 'SPUNTA' AND NOT EXISTS (SELECT FROM authorisations a WHERE a.vendor_id = p.vendor_id)`,
			"presence on a cancelled day":    `SELECT count(*) FROM vendor_presences p JOIN market_days d USING (market_id, date) WHERE d.status = 'CANCELLED'`,
			"presence on a day not recorded": `SELECT count(*) FROM vendor_presences p WHERE NOT EXISTS (SELECT FROM market_days d WHERE d.market_id = p.market_id AND d.date = p.date)`,
			"market day not on its weekdays": `SELECT count(*) FROM market_days d JOIN markets m ON m.id = d.market_id WHERE NOT extract(isodow FROM d.date)::smallint = ANY (m.days)`,
			"held day without its call at 08:00": `SELECT count(*) FROM market_days WHERE status = 'HELD'
				AND (call_at IS NULL OR call_at <> (date + time '08:00') AT TIME ZONE 'Europe/Rome')`,
			"cancelled day without a reason": `SELECT count(*) FROM market_days WHERE status = 'CANCELLED' AND (reason = '' OR call_at IS NOT NULL)`,
			"outcome on a holder's presence": `SELECT count(*) FROM vendor_presences WHERE kind = 'CONCESSION' AND outcome IS NOT NULL`,
			"spuntista without an outcome":   `SELECT count(*) FROM vendor_presences WHERE kind = 'SPUNTA' AND outcome IS NULL`,
			"stall iff ASSIGNED":             `SELECT count(*) FROM vendor_presences WHERE kind = 'SPUNTA' AND (stall_id IS NOT NULL) <> (outcome = 'ASSIGNED')`,
			"LATE iff after the call": `SELECT count(*) FROM vendor_presences p JOIN market_days d USING (market_id, date)
				WHERE p.kind = 'SPUNTA' AND (p.outcome = 'LATE') <> (p.checkin_at > d.call_at)`,
			"holder checked in after the call": `SELECT count(*) FROM vendor_presences p JOIN market_days d USING (market_id, date)
				WHERE p.kind = 'CONCESSION' AND p.checkin_at > d.call_at`,
			"spunta on a RISERVATO stall": `SELECT count(*) FROM vendor_presences p JOIN stalls s ON s.id = p.stall_id WHERE p.kind = 'SPUNTA' AND s.status = 'RISERVATO'`,
			"reserved stall to another category while its own waited": `SELECT count(*) FROM vendor_presences p
				JOIN stalls s ON s.id = p.stall_id JOIN vendors v ON v.id = p.vendor_id
				WHERE p.kind = 'SPUNTA' AND s.reserved_for IS NOT NULL AND NOT s.reserved_for = ANY (v.categories)
				AND EXISTS (SELECT FROM vendor_presences q JOIN vendors w ON w.id = q.vendor_id
					WHERE q.market_id = p.market_id AND q.date = p.date AND q.kind = 'SPUNTA' AND q.outcome = 'UNASSIGNED'
					AND s.reserved_for = ANY (w.categories)
					AND EXISTS (SELECT FROM authorisations a WHERE a.vendor_id = q.vendor_id AND a.sector = s.sector))`,
			"producers' stall outside the food area": `SELECT count(*) FROM stalls WHERE reserved_for = 'PRODUTTORE' AND sector <> 'ALIMENTARE'`,
			"food area not one block": `SELECT count(*) FROM (SELECT market_id FROM stalls WHERE sector = 'ALIMENTARE'
				GROUP BY market_id HAVING max(number) - min(number) + 1 <> count(*)) x`,
			"registration outside 1975..2024": `SELECT count(*) FROM vendors WHERE registered_on NOT BETWEEN '1975-01-01' AND '2024-12-31'`,
			"justified absence that is none": `SELECT count(*) FROM absence_justifications j JOIN concessions c ON c.id = j.concession_id
				WHERE j.market_id <> c.market_id OR j.date NOT BETWEEN c.valid_from AND coalesce(c.extended_to, c.valid_to)
				OR NOT EXISTS (SELECT FROM market_days d WHERE d.market_id = j.market_id AND d.date = j.date AND d.status = 'HELD')
				OR EXISTS (SELECT FROM vendor_presences p WHERE p.market_id = j.market_id AND p.date = j.date AND p.vendor_id = c.vendor_id)`,
			"subingresso not on the seller's title": `SELECT count(*) FROM concessions c JOIN concessions o ON o.id = c.follows_id
				WHERE c.follows_by = 'SUBINGRESSO' AND (o.status <> 'CESSATA' OR o.stall_id <> c.stall_id OR o.sector <> c.sector
					OR c.title_id <> o.title_id OR o.vendor_id = c.vendor_id OR c.valid_from <> o.valid_to + 1)`,
			"title not its own nor followed": `SELECT count(*) FROM concessions WHERE (follows_id IS NULL) <> (title_id = id)`,
			// L. 214/2023 art. 11, as the lifecycle job applies it: a title in
			// force on 2023-12-31 (held by the concession or the one it
			// follows) whose date came earlier runs until 2025-12-31.
			"legal extension missing or wrong": `SELECT count(*) FROM concessions c JOIN concessions t ON t.id = c.title_id
				WHERE c.status IN ('ATTIVA', 'SOSPESA', 'SCADUTA')
				AND (c.extended_to IS NOT NULL) <> (t.valid_from <= '2023-12-31' AND c.valid_to BETWEEN '2023-12-31' AND '2025-12-30')`,
			"extended to another date": `SELECT count(*) FROM concessions WHERE extended_to <> '2025-12-31'`,
		})
	})

	// share returns the percentage of the rows of query's second count
	// that its first counts, over every shard.
	share := func(what, part, whole string, lo, hi float64) {
		t.Helper()
		p, w := count(t, d, atToday(part)), count(t, d, atToday(whole))
		if f := 100 * float64(p) / float64(max(w, 1)); f < lo || f > hi {
			t.Errorf("%s: %d of %d (%.1f%%), want %.1f..%.1f%%", what, p, w, f, lo, hi)
		}
	}
	t.Run("shares like real markets", func(t *testing.T) {
		share("food stalls", "SELECT count(*) FROM stalls WHERE sector = 'ALIMENTARE'", "SELECT count(*) FROM stalls", 25, 35)
		share("reserved stalls", "SELECT count(*) FROM stalls WHERE reserved_for IS NOT NULL", "SELECT count(*) FROM stalls", 1, 6)
		share("stalls reserved for disabled operators", "SELECT count(*) FROM stalls WHERE reserved_for = 'DISABILE'", "SELECT count(*) FROM stalls", 0.2, 2.5)
		share("producers", "SELECT count(*) FROM vendors WHERE 'PRODUTTORE' = ANY (categories)", "SELECT count(*) FROM vendors", 2, 7)
		share("disabled operators", "SELECT count(*) FROM vendors WHERE 'DISABILE' = ANY (categories)", "SELECT count(*) FROM vendors", 0.3, 2.5)
		share("cancelled market days", "SELECT count(*) FROM market_days WHERE status = 'CANCELLED'", "SELECT count(*) FROM market_days", 0.5, 5)
		share("spuntisti ASSIGNED or UNASSIGNED", "SELECT count(*) FROM vendor_presences WHERE outcome IN ('ASSIGNED', 'UNASSIGNED')",
			"SELECT count(*) FROM vendor_presences WHERE kind = 'SPUNTA'", 90, 99.5)
		share("spuntisti who refused", "SELECT count(*) FROM vendor_presences WHERE outcome = 'REFUSED'",
			"SELECT count(*) FROM vendor_presences WHERE kind = 'SPUNTA'", 0.2, 4)
		share("spuntisti who came late", "SELECT count(*) FROM vendor_presences WHERE outcome = 'LATE'",
			"SELECT count(*) FROM vendor_presences WHERE kind = 'SPUNTA'", 1, 6)
		share("spuntisti authorised in both sectors", `SELECT count(*) FROM (SELECT vendor_id FROM authorisations WHERE type = 'B'
				GROUP BY vendor_id HAVING count(DISTINCT sector) = 2) x`, "SELECT count(DISTINCT vendor_id) FROM authorisations WHERE type = 'B'", 1, 12)
		share("subingressi", "SELECT count(*) FROM concessions WHERE follows_by = 'SUBINGRESSO'", "SELECT count(*) FROM concessions WHERE status = 'ATTIVA'", 2, 10)
		share("titles extended by law", "SELECT count(*) FROM concessions WHERE extended_to IS NOT NULL", "SELECT count(*) FROM concessions WHERE status = 'ATTIVA'", 2, 15)
		// Holders' absences on the held days of their terms, and the share
		// the office justified.
		absences := `SELECT count(*) FROM concessions c JOIN market_days d ON d.market_id = c.market_id AND d.status = 'HELD'
			AND d.date BETWEEN c.valid_from AND coalesce(c.extended_to, c.valid_to)
			WHERE c.status = 'ATTIVA' AND NOT EXISTS (SELECT FROM vendor_presences p WHERE p.market_id = c.market_id AND p.date = d.date AND p.vendor_id = c.vendor_id)`
		share("holders absent on held days", absences, `SELECT count(*) FROM concessions c JOIN market_days d ON d.market_id = c.market_id AND d.status = 'HELD'
			AND d.date BETWEEN c.valid_from AND coalesce(c.extended_to, c.valid_to) WHERE c.status = 'ATTIVA'`, 12, 25)
		share("absences justified", `SELECT count(*) FROM absence_justifications j JOIN concessions c ON c.id = j.concession_id WHERE c.status = 'ATTIVA'`,
			absences, 12, 28)
	})
	t.Run("every kind is there", func(t *testing.T) {
		for what, q := range map[string]string{
			"a reserved stall given to its category":  `SELECT count(*) FROM vendor_presences p JOIN stalls s ON s.id = p.stall_id JOIN vendors v ON v.id = p.vendor_id WHERE s.reserved_for = ANY (v.categories)`,
			"a reserved stall given to anyone":        `SELECT count(*) FROM vendor_presences p JOIN stalls s ON s.id = p.stall_id JOIN vendors v ON v.id = p.vendor_id WHERE NOT s.reserved_for = ANY (v.categories)`,
			"a spuntista with no stall of its sector": `SELECT count(*) FROM vendor_presences WHERE outcome = 'UNASSIGNED'`,
			"a cancellation for a holiday":            `SELECT count(*) FROM market_days WHERE reason LIKE 'Festività: %'`,
			"a justification of each reason":          `SELECT CASE WHEN count(DISTINCT reason) = 4 THEN 1 ELSE 0 END FROM absence_justifications`,
		} {
			if n := count(t, d, q); n == 0 {
				t.Errorf("no %s", what)
			}
		}
	})
}
