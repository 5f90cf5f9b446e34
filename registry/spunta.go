package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// The spunta as the law runs it (D.Lgs. 114/1998 art. 28; Intesa
// Stato-Regioni 5-7-2012; docs/domain.md). At the call (appello) of a
// market day, the free stalls (not RISERVATO, with nobody on them that
// day: holders absent or not yet checked in, vacant fixed stalls, spunta
// stalls) are offered, sector by sector (ALIMENTARE, then NON_ALIMENTARE;
// one pass where the regolamento applies no sectors) and in ranking order,
// to the spuntisti present at the call. Each chooses one stall of its
// sector or refuses; a stall reserved for a category (reserved_for) is
// offered outside the category only when no present spuntista of that
// category waits further down the ranking. A vendor given a stall, or
// that refused, is done for the day; one left without a stall of its
// sector has NO_STALL there and earns the presence. The assignment lasts
// the day (the presence's stall); the stall's status is not changed.
//
// A run is opened (OpenSpunta, storing the ranking it uses and the draw's
// seed), decided one choice at a time (ChooseSpunta) and closed
// (CloseSpunta); RunSpunta does all three with the default choice, the
// lowest-numbered stall offered. Every step is a spunta_events row.

// Actions of spunta_events.
const (
	actOffer   = "OFFER"
	actChosen  = "CHOSEN"
	actRefused = "REFUSED"
	actNoStall = "NO_STALL"
	actAbsent  = "ABSENT"
)

// Outcomes of a spuntista's presence (vendor_presences.outcome).
const (
	outAssigned   = "ASSIGNED"
	outUnassigned = "UNASSIGNED"
	outRefused    = "REFUSED"
)

// Statuses of a spunta run.
const (
	runOpen   = "OPEN"
	runClosed = "CLOSED"
)

// Spunta is a market day's spunta: the ranking it used, with each present
// spuntista's outcome, every event in order and, while it is OPEN, whose
// turn it is.
type Spunta struct {
	MarketID int64  `json:"market_id"`
	Date     string `json:"date"`
	Status   string `json:"status"`
	RunBy    string `json:"run_by"`
	// Seed is the draw's seed: with it anyone can recompute every draw
	// key, sha256(seed + ":" + vendor id) in hex (DrawKey).
	Seed      string        `json:"seed"`
	Sectors   bool          `json:"sectors"`
	TieBreaks []string      `json:"tie_breaks"`
	Assigned  int           `json:"assigned"`
	Ranking   []SpuntaEntry `json:"ranking"`
	Events    []SpuntaEvent `json:"events"`
	Turn      *SpuntaTurn   `json:"turn"`
	// AlreadyRun is true when RunSpunta found the day's spunta run
	// before: this is its outcome, and nothing changed.
	AlreadyRun bool `json:"already_run"`
}

// SpuntaEntry is one vendor's place in the ranking a spunta used, and how
// its call went: Outcome ASSIGNED (with the stall), UNASSIGNED (no stall of
// the sector left) or REFUSED, nil when absent or not called yet.
type SpuntaEntry struct {
	RankEntry
	Present     bool    `json:"present"`
	Outcome     *string `json:"outcome"`
	StallID     *int64  `json:"stall_id"`
	StallNumber *int32  `json:"stall_number"`
}

// SpuntaEvent is one step of a spunta, in order: an OFFER of the Free
// stalls (by number), the CHOSEN stall, a refusal (REFUSED), NO_STALL of
// the sector left, or a ranked vendor ABSENT at the call.
type SpuntaEvent struct {
	Seq      int       `json:"seq" db:"seq"`
	VendorID int64     `json:"vendor_id" db:"vendor_id"`
	Sector   string    `json:"sector" db:"sector"`
	Rank     int64     `json:"rank" db:"rank"`
	Action   string    `json:"action" db:"action"`
	StallID  *int64    `json:"stall_id" db:"stall_id"`
	Free     []int32   `json:"free" db:"free"`
	At       time.Time `json:"at" db:"at"`
	ByUser   string    `json:"by_user" db:"by_user"`
}

// SpuntaTurn is the vendor called now and the stalls offered to it.
type SpuntaTurn struct {
	VendorID int64         `json:"vendor_id"`
	Sector   string        `json:"sector,omitempty"`
	Rank     int64         `json:"rank"`
	Free     []SpuntaStall `json:"free"`
}

// SpuntaStall is a stall offered at a spunta.
type SpuntaStall struct {
	ID          int64   `json:"id" db:"id"`
	Number      int32   `json:"number" db:"number"`
	Sector      string  `json:"sector" db:"sector"`
	ReservedFor *string `json:"reserved_for" db:"reserved_for"`
	Status      string  `json:"-" db:"status"`
	Taken       bool    `json:"-" db:"taken"`
}

// SpuntaDay names a market day's spunta, and the draw's seed when an
// office gives one (else a random one is drawn when the run opens). At is
// the time of the step (zero: now): its events', and the call's when the
// opening records it.
type SpuntaDay struct {
	Date time.Time
	Seed string
	At   time.Time
}

// SpuntaChoice is one decision at the call: VendorID (whose turn it must
// be) chooses StallID, or refuses (Refuse).
type SpuntaChoice struct {
	Date     time.Time
	VendorID int64
	StallID  int64
	Refuse   bool
	At       time.Time // as SpuntaDay's
}

// spuntaRun reads a market day's run.
const spuntaRun = `SELECT status, run_by, result::text FROM spunta_runs WHERE market_id = @market AND date = @day::date`

// The statements of a spunta. The reads go in one batch (one round trip);
// the writes of a step too.
var (
	spuntaMarketSQL = named(`SELECT comune FROM markets WHERE id = @market AND region_id = @region`)
	spuntaDaySQL    = named(`SELECT status FROM market_days WHERE market_id = @market AND date = @day::date`)
	spuntaRunSQL    = named(spuntaRun)
	// spuntaRunLockSQL reads the run and locks it: the steps of a run
	// follow one another.
	spuntaRunLockSQL = named(spuntaRun + ` FOR UPDATE`)
	spuntaStallsSQL  = named(`SELECT s.id, s.number, s.sector, s.reserved_for, s.status,
			EXISTS (SELECT FROM vendor_presences p WHERE p.market_id = @market AND p.date = @day::date AND p.stall_id = s.id) AS taken
		FROM stalls s WHERE s.market_id = @market AND s.region_id = @region ORDER BY s.number`)
	spuntaEventsSQL = named(`SELECT seq, vendor_id, sector, rank, action, stall_id, free, at, by_user
		FROM spunta_events WHERE market_id = @market AND date = @day::date ORDER BY seq`)

	// spuntaInsertRunSQL stores a new run, audited (the audit row leaves
	// out the result, the ranking, which the run keeps).
	spuntaInsertRunSQL = named(`WITH ins AS (
		INSERT INTO spunta_runs (region_id, market_id, comune, date, run_by, result, status, seed)
		VALUES (@region, @market, @comune, @day, @user, @result, @status, @seed) RETURNING *
	), ` + auditCTE("audit", "spunta", "market", "n.market_id, NULL, to_jsonb(n) - 'result' FROM ins n") + `
	SELECT count(*) FROM ins`)
	// spuntaUpdateRunSQL stores a run's state, audited when it closes.
	spuntaUpdateRunSQL = named(`WITH old AS (
		SELECT * FROM spunta_runs WHERE market_id = @market AND date = @day::date
	), upd AS (
		UPDATE spunta_runs SET result = @result, status = @status WHERE market_id = @market AND date = @day::date RETURNING *
	), ` + auditCTE("audit", "spunta", "market", "n.market_id, to_jsonb(o) - 'result', to_jsonb(n) - 'result' FROM old o JOIN upd n USING (market_id) WHERE n.status <> o.status") + `
	SELECT count(*) FROM upd`)
	// spuntaEventsInsertSQL appends events; @free holds each event's
	// stall numbers as an array literal.
	spuntaEventsInsertSQL = named(`INSERT INTO spunta_events (market_id, date, seq, region_id, comune, vendor_id, sector, rank, action, stall_id, free, at, by_user)
		SELECT @market, @day, e.seq, @region, @comune, e.vendor_id, e.sector, e.rank, e.action, e.stall_id, e.free::integer[], @at, @user
		FROM unnest(@seqs::integer[], @vendors::bigint[], @sectors::text[], @ranks::integer[], @actions::text[], @stalls::bigint[], @free::text[])
			AS e (seq, vendor_id, sector, rank, action, stall_id, free)`)
	// spuntaPresencesSQL sets the stall and outcome of spuntisti's
	// presences, audited.
	spuntaPresencesSQL = named(`WITH ch AS (
		SELECT * FROM unnest(@p_ids::bigint[], @p_stalls::bigint[], @p_outcomes::text[]) AS x (id, stall_id, outcome)
	), old_p AS (
		SELECT p.* FROM vendor_presences p JOIN ch ON p.id = ch.id WHERE p.market_id = @market AND p.date = @day::date
	), upd_p AS (
		UPDATE vendor_presences p SET stall_id = ch.stall_id, outcome = ch.outcome FROM ch
		WHERE p.id = ch.id AND p.market_id = @market AND p.date = @day::date
		RETURNING p.*
	), ` + auditCTE("audit_p", "spunta", "presence", "n.id, to_jsonb(o), to_jsonb(n) FROM old_p o JOIN upd_p n ON n.id = o.id") + `
	SELECT count(*) FROM upd_p`)
	// spuntaCallSQL records the call of a market day held today that has
	// none: the spunta opening is the call.
	spuntaCallSQL = named(`INSERT INTO market_days (market_id, region_id, comune, date, status, call_at, updated_by)
		SELECT @market, @region, @comune, @day::date, 'HELD', @at::timestamptz, @user
		WHERE @day::date = (@at::timestamptz AT TIME ZONE 'Europe/Rome')::date
		ON CONFLICT (market_id, date) DO UPDATE SET call_at = EXCLUDED.call_at, updated_by = EXCLUDED.updated_by, updated_at = now()
		WHERE market_days.status = 'HELD' AND market_days.call_at IS NULL`)
)

// spuntaRead is what a step of a spunta reads, in one batch.
type spuntaRead struct {
	comune    string
	found     bool
	dayStatus string
	run       *Spunta // nil when the day has none
	events    []SpuntaEvent
	stalls    []SpuntaStall
	sectors   bool
	tieBreaks []string
	ranking   []rankRow
}

// readSpunta reads market marketID's spunta of day in tx, in one round
// trip, locking the run when lock; with rank, also the ranking a new run would use, drawn with seed.
func readSpunta(ctx context.Context, tx pgx.Tx, a pgx.NamedArgs, rank, lock bool) (spuntaRead, error) {
	var r spuntaRead
	b := &pgx.Batch{}
	spuntaMarketSQL.queue(b, a).Query(func(rows pgx.Rows) error {
		if r.found = rows.Next(); r.found {
			if err := rows.Scan(&r.comune); err != nil {
				return err
			}
		}
		rows.Close()
		return rows.Err()
	})
	spuntaDaySQL.queue(b, a).Query(func(rows pgx.Rows) error {
		if rows.Next() {
			if err := rows.Scan(&r.dayStatus); err != nil {
				return err
			}
		}
		rows.Close()
		return rows.Err()
	})
	runSQL := spuntaRunSQL
	if lock {
		runSQL = spuntaRunLockSQL
	}
	runSQL.queue(b, a).Query(func(rows pgx.Rows) error {
		if rows.Next() {
			var status, runBy, result string
			if err := rows.Scan(&status, &runBy, &result); err != nil {
				return err
			}
			r.run = &Spunta{}
			if err := json.Unmarshal([]byte(result), r.run); err != nil {
				return fmt.Errorf("decode spunta run: %w", err)
			}
			r.run.Status, r.run.RunBy = status, runBy
		}
		rows.Close()
		return rows.Err()
	})
	spuntaEventsSQL.queue(b, a).Query(func(rows pgx.Rows) error {
		var err error
		r.events, err = pgx.CollectRows(rows, pgx.RowToStructByName[SpuntaEvent])
		return err
	})
	spuntaStallsSQL.queue(b, a).Query(func(rows pgx.Rows) error {
		var err error
		r.stalls, err = pgx.CollectRows(rows, pgx.RowToStructByName[SpuntaStall])
		return err
	})
	if rank {
		rankingOptionsSQL.queue(b, a).QueryRow(func(row pgx.Row) error {
			return row.Scan(&r.sectors, &r.tieBreaks)
		})
		spuntaRankingSQL.queue(b, a).Query(func(rows pgx.Rows) error {
			var err error
			r.ranking, err = pgx.CollectRows(rows, pgx.RowToStructByName[rankRow])
			return err
		})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return r, err
	}
	if !r.found {
		return r, ErrNotFound
	}
	return r, nil
}

// call is a spunta in progress, in memory: the run, the market's stalls
// and the events, with the events and presence changes of this step.
type call struct {
	run    *Spunta
	stalls []SpuntaStall // every stall of the market, by number
	events []SpuntaEvent // the new events of this step
	seq    int           // of the last event
	by     string
	now    time.Time
	// changed are the present spuntisti whose presence changes.
	changed map[int64]bool
}

// done reports whether vendor v was given a stall or refused.
func (c *call) done(v int64) bool {
	for _, e := range c.run.Ranking {
		if e.VendorID == v && e.Outcome != nil && (*e.Outcome == outAssigned || *e.Outcome == outRefused) {
			return true
		}
	}
	return false
}

// pending reports whether entry i is still to be called.
func (c *call) pending(i int) bool {
	e := &c.run.Ranking[i]
	return e.Present && e.Outcome == nil && !c.done(e.VendorID)
}

// offer returns the stalls offered to entry i: the free stalls of its
// sector, a reserved one only to its category or when no pending
// spuntista of the category remains in the sector's ranking.
func (c *call) offer(i int) []SpuntaStall {
	e := &c.run.Ranking[i]
	var out []SpuntaStall
	for _, s := range c.stalls {
		if s.Taken || s.Status == "RISERVATO" || (c.run.Sectors && s.Sector != e.Sector) {
			continue
		}
		if s.ReservedFor != nil && !slices.Contains(e.Categories, *s.ReservedFor) && c.waiting(e.Sector, *s.ReservedFor) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// waiting reports whether a pending spuntista of category cat remains in
// the ranking of sector.
func (c *call) waiting(sector, cat string) bool {
	for i, e := range c.run.Ranking {
		if e.Sector == sector && slices.Contains(e.Categories, cat) && c.pending(i) {
			return true
		}
	}
	return false
}

// next returns the entry whose turn it is and its offer, or -1; entries
// with nothing to offer before it are skipped.
func (c *call) next() (int, []SpuntaStall) {
	for i := range c.run.Ranking {
		if !c.pending(i) {
			continue
		}
		if offer := c.offer(i); len(offer) > 0 {
			return i, offer
		}
	}
	return -1, nil
}

// advance moves the call to the next turn: every pending entry with
// nothing of its sector to take gets NO_STALL (UNASSIGNED), and the one
// whose turn it is an OFFER, unless its offer is the last event.
func (c *call) advance() (int, []SpuntaStall) {
	for i := range c.run.Ranking {
		if !c.pending(i) {
			continue
		}
		offer := c.offer(i)
		if len(offer) == 0 {
			c.decide(i, actNoStall, nil)
			continue
		}
		last := c.last()
		if last == nil || last.Action != actOffer || last.VendorID != c.run.Ranking[i].VendorID || last.Sector != c.eventSector(i) {
			c.event(i, actOffer, nil, offer)
		}
		return i, offer
	}
	return -1, nil
}

// last returns the last event, nil when none.
func (c *call) last() *SpuntaEvent {
	if n := len(c.events); n > 0 {
		return &c.events[n-1]
	}
	if n := len(c.run.Events); n > 0 {
		return &c.run.Events[n-1]
	}
	return nil
}

// eventSector is the sector of entry i's events: spunta_events needs one
// where the regolamento applies none, NON_ALIMENTARE (the stalls' default).
func (c *call) eventSector(i int) string {
	if s := c.run.Ranking[i].Sector; s != "" {
		return s
	}
	return "NON_ALIMENTARE"
}

// event appends an event of entry i.
func (c *call) event(i int, action string, stall *SpuntaStall, free []SpuntaStall) {
	e := &c.run.Ranking[i]
	c.seq++
	ev := SpuntaEvent{Seq: c.seq, VendorID: e.VendorID, Sector: c.eventSector(i), Rank: e.Rank, Action: action,
		Free: []int32{}, At: c.now, ByUser: c.by}
	if stall != nil {
		ev.StallID = &stall.ID
	}
	for _, s := range free {
		ev.Free = append(ev.Free, s.Number)
	}
	c.events = append(c.events, ev)
}

// decide records entry i's decision: CHOSEN stall, REFUSED or NO_STALL.
func (c *call) decide(i int, action string, stall *SpuntaStall) {
	e := &c.run.Ranking[i]
	c.event(i, action, stall, nil)
	out := map[string]string{actChosen: outAssigned, actRefused: outRefused, actNoStall: outUnassigned}[action]
	e.Outcome = &out
	if stall != nil {
		stall.Taken = true
		id, n := stall.ID, stall.Number
		e.StallID, e.StallNumber = &id, &n
		c.run.Assigned++
	}
	c.changed[e.VendorID] = true
}

// choose records vendor v's choice of stall stallID (0: a refusal) at its
// turn, or the rule it breaks.
func (c *call) choose(v, stallID int64, refuse bool) error {
	i, offer := c.next()
	if i < 0 {
		return ruleConflict("not-your-turn", "every spuntista present has been called; close the spunta")
	}
	e := &c.run.Ranking[i]
	if e.VendorID != v {
		return ruleConflict("not-your-turn", "it is the turn of vendor %d (rank %d)", e.VendorID, e.Rank)
	}
	if refuse {
		c.decide(i, actRefused, nil)
		return nil
	}
	s := c.stall(stallID)
	if s == nil {
		return &MissingError{Field: "stall_id"}
	}
	switch {
	case s.Taken || s.Status == "RISERVATO":
		return ruleConflict("stall-not-free", "stall %d is not free today", s.Number)
	case c.run.Sectors && s.Sector != e.Sector:
		return ruleConflict("wrong-sector", "stall %d is %s; the vendor is called in %s", s.Number, s.Sector, e.Sector)
	case !slices.ContainsFunc(offer, func(o SpuntaStall) bool { return o.ID == s.ID }):
		return ruleConflict("reserved-stall", "stall %d is reserved for %s, and one of them is still to be called", s.Number, *s.ReservedFor)
	}
	c.decide(i, actChosen, s)
	return nil
}

// stall returns the market's stall id, nil when it has none.
func (c *call) stall(id int64) *SpuntaStall {
	if k := slices.IndexFunc(c.stalls, func(s SpuntaStall) bool { return s.ID == id }); k >= 0 {
		return &c.stalls[k]
	}
	return nil
}

// closeCall gives every pending spuntista NO_STALL and closes the run.
func (c *call) closeCall() {
	for i := range c.run.Ranking {
		if c.pending(i) {
			c.decide(i, actNoStall, nil)
		}
	}
	c.run.Status = runClosed
}

// presenceChanges returns the presences to update: each changed present
// spuntista's presence with its stall and its day's outcome (ASSIGNED if
// given a stall, else REFUSED if it refused, else UNASSIGNED).
func (c *call) presenceChanges() (ids, stalls []*int64, outcomes []string) {
	seen := map[int64]bool{}
	for _, e := range c.run.Ranking {
		if !c.changed[e.VendorID] || seen[e.VendorID] || e.PresenceID == nil {
			continue
		}
		seen[e.VendorID] = true
		var stall *int64
		outcome := ""
		for _, f := range c.run.Ranking {
			if f.VendorID != e.VendorID || f.Outcome == nil {
				continue
			}
			switch {
			case *f.Outcome == outAssigned:
				stall, outcome = f.StallID, outAssigned
			case *f.Outcome == outRefused && outcome != outAssigned:
				outcome = outRefused
			case outcome == "":
				outcome = outUnassigned
			}
		}
		ids, stalls, outcomes = append(ids, e.PresenceID), append(stalls, stall), append(outcomes, outcome)
	}
	return ids, stalls, outcomes
}

// turn returns the current turn of an OPEN run.
func (c *call) turn() *SpuntaTurn {
	if c.run.Status != runOpen {
		return nil
	}
	i, offer := c.next()
	if i < 0 {
		return nil
	}
	e := &c.run.Ranking[i]
	return &SpuntaTurn{VendorID: e.VendorID, Sector: e.Sector, Rank: e.Rank, Free: offer}
}

// spuntaArgs returns the arguments of the statements of market marketID's
// spunta of day.
func spuntaArgs(sc regions.Scope, w Write, marketID int64, day time.Time) pgx.NamedArgs {
	return writeArgs(sc, w, pgx.NamedArgs{"market": marketID, "day": day, "to": day.AddDate(0, 0, -1), "present": true})
}

// stepTime is the time of a step's events, at (else now) as PostgreSQL
// keeps it.
func stepTime(at time.Time) time.Time {
	if at.IsZero() {
		at = time.Now()
	}
	return at.UTC().Truncate(time.Microsecond)
}

// newSeed returns a random draw seed: 16 bytes in hex.
func newSeed() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// open starts a run of the spunta of the day a names, in tx: its ranking
// (spuntaRankingSQL, presences up to the day before, the present
// spuntisti), the ABSENT events of the ranked vendors not present at the
// call. It returns the call and whether a run existed (then unchanged).
func open(ctx context.Context, tx pgx.Tx, a pgx.NamedArgs, seed string, at time.Time) (*call, bool, error) {
	if seed == "" {
		var err error
		if seed, err = newSeed(); err != nil {
			return nil, false, err
		}
	}
	a["seed"] = seed
	r, err := readSpunta(ctx, tx, a, true, true)
	if err != nil {
		return nil, false, err
	}
	a["comune"] = r.comune
	c := &call{stalls: r.stalls, by: a["user"].(string), now: stepTime(at), changed: map[int64]bool{}}
	if r.run != nil {
		c.run = r.run
		c.run.Events = r.events
		c.seq = len(r.events)
		return c, true, nil
	}
	if r.dayStatus == "CANCELLED" {
		return nil, false, ruleConflict("market-day-cancelled", "the market day was cancelled: no spunta")
	}
	day := a["day"].(time.Time)
	c.run = &Spunta{MarketID: a["market"].(int64), Date: day.Format(time.DateOnly), Status: runOpen, RunBy: c.by,
		Seed: seed, Sectors: r.sectors, TieBreaks: r.tieBreaks, Ranking: []SpuntaEntry{}, Events: []SpuntaEvent{}}
	for _, e := range rankEntries(r.ranking, r.tieBreaks) {
		c.run.Ranking = append(c.run.Ranking, SpuntaEntry{RankEntry: e, Present: e.PresenceID != nil})
	}
	for i, e := range c.run.Ranking {
		if !e.Present {
			c.event(i, actAbsent, nil, nil)
		}
	}
	return c, false, nil
}

// store writes call c's step in tx, in one round trip: the run (a new one
// when insert), the new events and the changed presences, audited.
func (c *call) store(ctx context.Context, tx pgx.Tx, a pgx.NamedArgs, insert bool) error {
	stored := *c.run
	stored.Events, stored.Turn, stored.AlreadyRun = nil, nil, false
	result, err := marshal(stored)
	if err != nil {
		return err
	}
	a["result"], a["status"], a["at"] = string(result), c.run.Status, c.now
	b := &pgx.Batch{}
	counted := func(what string, want int) func(pgx.Row) error {
		return func(row pgx.Row) error {
			var n int
			if err := row.Scan(&n); err != nil {
				return err
			}
			if n != want {
				return fmt.Errorf("%w: %s wrote %d rows, want %d", errRetry, what, n, want)
			}
			return nil
		}
	}
	if insert {
		spuntaInsertRunSQL.queue(b, a).QueryRow(counted("spunta run", 1))
		spuntaCallSQL.queue(b, a)
	} else {
		spuntaUpdateRunSQL.queue(b, a).QueryRow(counted("spunta run", 1))
	}
	if len(c.events) > 0 {
		ea := pgx.NamedArgs{}
		for k, v := range a {
			ea[k] = v
		}
		var (
			seqs, ranks   []int32
			vendors       []int64
			stalls        []*int64
			sectors, acts []string
			free          []string
		)
		for _, e := range c.events {
			seqs, ranks = append(seqs, int32(e.Seq)), append(ranks, int32(e.Rank))
			vendors, stalls = append(vendors, e.VendorID), append(stalls, e.StallID)
			sectors, acts = append(sectors, e.Sector), append(acts, e.Action)
			nums := make([]string, len(e.Free))
			for k, n := range e.Free {
				nums[k] = strconv.Itoa(int(n))
			}
			free = append(free, "{"+strings.Join(nums, ",")+"}")
		}
		ea["seqs"], ea["ranks"], ea["vendors"], ea["stalls"], ea["sectors"], ea["actions"], ea["free"] = seqs, ranks, vendors, stalls, sectors, acts, free
		spuntaEventsInsertSQL.queue(b, ea)
	}
	if ids, stalls, outcomes := c.presenceChanges(); len(ids) > 0 {
		pa := pgx.NamedArgs{"p_ids": ids, "p_stalls": stalls, "p_outcomes": outcomes}
		for k, v := range a {
			pa[k] = v
		}
		spuntaPresencesSQL.queue(b, pa).QueryRow(counted("spuntisti's presences", len(ids)))
	}
	err = tx.SendBatch(ctx, b).Close()
	switch {
	case isPgConstraint(err, "spunta_runs_pkey"):
		return errRetry // a concurrent run of the day: read it
	case isPgConstraint(err, "vendor_presences_market_date_stall"):
		return ruleConflict("stall-not-free", "the stall was taken while the spunta ran")
	}
	return err
}

// finish returns the spunta as the API shows it after call c's step.
func (c *call) finish() Spunta {
	out := *c.run
	out.Events = append(slices.Clip(out.Events), c.events...)
	if out.Events == nil {
		out.Events = []SpuntaEvent{}
	}
	out.Turn = c.turn()
	return out
}

// RunSpunta runs the spunta of market marketID on day d in scope sc with
// the default choice, in one transaction: it opens the run (OpenSpunta),
// gives each spuntista in turn the lowest-numbered stall offered, and
// closes it. A market day's spunta runs once: when a CLOSED run of the day
// exists, RunSpunta returns it with AlreadyRun and changes nothing; an
// OPEN one is a *ConflictError (rule spunta-open), as is a CANCELLED day
// (market-day-cancelled). A market not in scope is ErrNotFound.
func RunSpunta(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, marketID int64, d SpuntaDay) (Result[Spunta], error) {
	existing := func(c *call) (Spunta, error) {
		if c.run.Status == runOpen {
			return Spunta{}, ruleConflict("spunta-open", "the spunta of the day is open: make the choices or close it")
		}
		out := c.finish()
		out.AlreadyRun = true
		return out, nil
	}
	return opening(ctx, sh, sc, w, marketID, d, existing, func(c *call) {
		for {
			i, offer := c.advance()
			if i < 0 {
				break
			}
			c.decide(i, actChosen, c.stall(offer[0].ID))
		}
		c.closeCall()
	})
}

// OpenSpunta opens the spunta of market marketID on day d in scope sc: it
// stores the ranking it uses (presences up to the day before; the
// spuntisti present at the call, which it records when the day is today
// and has none) with the draw's seed (d.Seed, else a random one), the
// ABSENT events, and the first OFFER. A day with a run is a
// *ConflictError (spunta-open, or spunta-closed when it ran), as is a
// CANCELLED day (market-day-cancelled). A market not in scope is ErrNotFound.
func OpenSpunta(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, marketID int64, d SpuntaDay) (Result[Spunta], error) {
	existing := func(c *call) (Spunta, error) { return Spunta{}, runConflict(c.run.Status) }
	return opening(ctx, sh, sc, w, marketID, d, existing, func(c *call) { c.advance() })
}

// opening opens market marketID's spunta of day d, runs fn on the new call
// and stores it, in one transaction; when the day has a run, existing
// answers instead.
func opening(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, marketID int64, d SpuntaDay,
	existing func(c *call) (Spunta, error), fn func(c *call)) (Result[Spunta], error) {
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Spunta, bool, error) {
		a := spuntaArgs(sc, w, marketID, d.Date)
		if err := useGenericPlans(ctx, tx); err != nil {
			return Spunta{}, false, err
		}
		c, existed, err := open(ctx, tx, a, d.Seed, d.At)
		if err != nil {
			return Spunta{}, false, err
		}
		if existed {
			out, err := existing(c)
			return out, false, err
		}
		fn(c)
		if err := c.store(ctx, tx, a, true); err != nil {
			return Spunta{}, false, err
		}
		return c.finish(), true, nil
	})
}

// useGenericPlans sets the rest of transaction tx to run its prepared
// statements with their generic plans (genericPlans). The ranking counts presences
// accumulated over the years, so no date prunes the presences' monthly
// partitions at plan time: a custom plan is planned anew over every
// partition at each run, where the generic one is planned once per
// connection and pruned at execution. Measured on BenchmarkSpunta (60
// stalls, 40 spuntisti), alternated in one run: 22-26 ms a day against
// 27-38 ms with custom plans.
func useGenericPlans(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, genericPlans)
	return err
}

// runConflict is the conflict of opening a run over one in status.
func runConflict(status string) error {
	if status == runOpen {
		return ruleConflict("spunta-open", "the spunta of the day is already open")
	}
	return ruleConflict("spunta-closed", "the spunta of the day has run")
}

// step runs fn on the OPEN run of market marketID's spunta of day, then
// advances it and stores the step, in one transaction.
func step(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, marketID int64, day, at time.Time, fn func(c *call) error) (Result[Spunta], error) {
	return write(ctx, sh, sc, w, func(tx pgx.Tx) (Spunta, bool, error) {
		a := spuntaArgs(sc, w, marketID, day)
		if err := useGenericPlans(ctx, tx); err != nil {
			return Spunta{}, false, err
		}
		r, err := readSpunta(ctx, tx, a, false, true)
		if err != nil {
			return Spunta{}, false, err
		}
		if r.run == nil || r.run.Status != runOpen {
			return Spunta{}, false, ruleConflict("spunta-closed", "the spunta of the day is not open")
		}
		a["comune"] = r.comune
		c := &call{run: r.run, stalls: r.stalls, seq: len(r.events), by: w.Actor.User, now: stepTime(at), changed: map[int64]bool{}}
		c.run.Events = r.events
		if err := fn(c); err != nil {
			return Spunta{}, false, err
		}
		if err := c.store(ctx, tx, a, false); err != nil {
			return Spunta{}, false, err
		}
		return c.finish(), true, nil
	})
}

// ChooseSpunta records one decision at the OPEN spunta of market marketID
// in scope sc: the vendor whose turn it is chooses a stall offered to it,
// or refuses (no presence earned), then the call moves to the next turn.
// The rules it enforces are *ConflictError: not-your-turn, stall-not-free,
// wrong-sector, reserved-stall, spunta-closed; a stall not of the market
// is a *MissingError; a market not in scope ErrNotFound.
func ChooseSpunta(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, marketID int64, ch SpuntaChoice) (Result[Spunta], error) {
	return step(ctx, sh, sc, w, marketID, ch.Date, ch.At, func(c *call) error {
		if err := c.choose(ch.VendorID, ch.StallID, ch.Refuse); err != nil {
			return err
		}
		c.advance()
		return nil
	})
}

// CloseSpunta closes the OPEN spunta of market marketID on day d: the
// present spuntisti not called yet get NO_STALL (UNASSIGNED: they earn
// the presence). No open run is a *ConflictError (spunta-closed).
func CloseSpunta(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w Write, marketID int64, d SpuntaDay) (Result[Spunta], error) {
	return step(ctx, sh, sc, w, marketID, d.Date, d.At, func(c *call) error {
		c.closeCall()
		return nil
	})
}

// GetSpunta returns the spunta of market marketID on day in scope sc: the
// ranking it used, its events and, while OPEN, the current turn; ErrNotFound
// when the market is not in scope or the day has no run.
func GetSpunta(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, marketID int64, day time.Time) (Spunta, error) {
	var out Spunta
	err := sh.Tx(ctx, sc, pgx.ReadOnly, func(tx pgx.Tx) error {
		a := scopeArgs(sc)
		a["market"], a["day"] = marketID, day
		r, err := readSpunta(ctx, tx, a, false, false)
		if err != nil {
			return err
		}
		if r.run == nil {
			return ErrNotFound
		}
		c := &call{run: r.run, stalls: r.stalls}
		c.run.Events = r.events
		out = c.finish()
		return nil
	})
	return out, err
}
