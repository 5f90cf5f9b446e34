package router

import (
	"context"
	"regexp"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// The spunta of a market day and the graduatoria (issue 13; registry's
// spunta.go says how the law runs it).

// spuntaBody is the body of a spunta's run, opening and closing: an
// office may give the draw's seed; day comes from the query.
type spuntaBody struct {
	Seed *string `json:"seed"`
	day  time.Time
}

// choiceBody is one decision at the call.
type choiceBody struct {
	VendorID *int64 `json:"vendor_id"`
	StallID  *int64 `json:"stall_id"`
	Refuse   bool   `json:"refuse"`
	day      time.Time
}

// seedPattern is what a seed an office gives may hold: it is published with
// the graduatoria, so anyone can recompute the draw.
var seedPattern = regexp.MustCompile(`^[0-9A-Za-z._:-]{1,64}$`)

// runSpunta is POST /v1/markets/{id}/spunta?date= {seed?}: the whole call
// of that market day (default today) with the default choice, the
// lowest-numbered stall offered; running it again returns the outcome.
func (s *Server) runSpunta(c *gin.Context) error {
	return write(s, c, toPathID, s.readSpunta, s.checkSpuntaSeed, registry.RunSpunta)
}

// openSpunta is POST /v1/markets/{id}/spunta/open?date= {seed?}: stores the
// ranking and opens the call; the answer names the first turn.
func (s *Server) openSpunta(c *gin.Context) error {
	return write(s, c, toPathID, s.readSpunta, s.checkSpuntaSeed, registry.OpenSpunta)
}

// closeSpunta is POST /v1/markets/{id}/spunta/close?date=: ends the call.
func (s *Server) closeSpunta(c *gin.Context) error {
	return write(s, c, toPathID, s.readSpunta, s.checkSpuntaNoSeed, registry.CloseSpunta)
}

// chooseSpunta is POST /v1/markets/{id}/spunta/choice?date=
// {vendor_id, stall_id} or {vendor_id, refuse: true}: one decision.
func (s *Server) chooseSpunta(c *gin.Context) error {
	return write(s, c, toPathID, s.readChoice, s.checkChoice, registry.ChooseSpunta)
}

// getSpunta is GET /v1/markets/{id}/spunta?date=: the day's run, its
// ranking, events and current turn.
func (s *Server) getSpunta(c *gin.Context) error {
	marketID, r, err := pathID(c)
	if err != nil {
		return err
	}
	q := queryParams(c, "date")
	day := q.date("date", s.today())
	if err := q.err(); err != nil {
		return err
	}
	sc, err := s.targetID(c, r)
	if err != nil {
		return err
	}
	out, err := onShard(s, c, r, func(ctx context.Context, sh *shardmap.Shard) (registry.Spunta, error) {
		return registry.GetSpunta(ctx, sh, sc, marketID, day)
	})
	if err != nil {
		return err
	}
	return writeJSON(c, out)
}

// spuntaDate reads the day of a spunta from the query: default today,
// never in the future.
func (s *Server) spuntaDate(c *gin.Context) (time.Time, error) {
	q := queryParams(c, "date")
	day := q.date("date", s.today())
	if day.After(s.today()) {
		q.bad("date", "is in the future")
	}
	return day, q.err()
}

// readSpunta reads the day of a spunta from the query and the body, which
// may be empty.
func (s *Server) readSpunta(c *gin.Context, b *spuntaBody) (registry.Write, error) {
	return s.readStep(c, &b.day, b, true)
}

// readChoice reads the day of a choice from the query and the body.
func (s *Server) readChoice(c *gin.Context, b *choiceBody) (registry.Write, error) {
	return s.readStep(c, &b.day, b, false)
}

// readStep reads a step of a spunta: its day from the query into day, its
// JSON body into b (an empty one too, when emptyOK).
func (s *Server) readStep(c *gin.Context, day *time.Time, b any, emptyOK bool) (registry.Write, error) {
	var err error
	if *day, err = s.spuntaDate(c); err != nil {
		return registry.Write{}, err
	}
	return readWrite(c, b, emptyOK)
}

// checkSpuntaSeed checks the seed an office gives.
func (s *Server) checkSpuntaSeed(k *checks, req writeReq, b *spuntaBody) (registry.SpuntaDay, regions.Code, error) {
	d := registry.SpuntaDay{Date: b.day, At: s.now()}
	if b.Seed != nil {
		if !seedPattern.MatchString(*b.Seed) {
			k.bad("seed", "want 1 to 64 letters, digits or . _ : -")
		}
		d.Seed = *b.Seed
	}
	return d, req.region, nil
}

// checkSpuntaNoSeed refuses a seed: closing draws nothing.
func (s *Server) checkSpuntaNoSeed(k *checks, req writeReq, b *spuntaBody) (registry.SpuntaDay, regions.Code, error) {
	if b.Seed != nil {
		k.bad("seed", "the draw was made when the spunta opened")
	}
	return registry.SpuntaDay{Date: b.day, At: s.now()}, req.region, nil
}

// checkChoice checks a decision: a vendor, and a stall or a refusal.
func (s *Server) checkChoice(k *checks, req writeReq, b *choiceBody) (registry.SpuntaChoice, regions.Code, error) {
	in := registry.SpuntaChoice{Date: b.day, VendorID: need(k, "vendor_id", b.VendorID, checkID), Refuse: b.Refuse, At: s.now()}
	switch {
	case b.Refuse && b.StallID != nil:
		k.bad("stall_id", "a refusal names no stall")
	case !b.Refuse && b.StallID == nil:
		k.bad("stall_id", "required unless refuse is true")
	case b.StallID != nil:
		in.StallID = need(k, "stall_id", b.StallID, checkID)
	}
	r := req.region
	if req.p.Territory.Covers(r) {
		if err := sameRegion(k, req.p, r, "vendor_id", idRegion(in.VendorID)); err != nil {
			return in, r, err
		}
		if in.StallID != 0 {
			if err := sameRegion(k, req.p, r, "stall_id", idRegion(in.StallID)); err != nil {
				return in, r, err
			}
		}
	}
	return in, r, nil
}

// getGraduatoria is GET /v1/markets/{id}/graduatoria?sector=&date=&year=&kind=:
// the market's ranking (kind SPUNTA, the default) as it stands on date
// (default today; year Y: its last day, or today in this year), of one
// sector or all; kind CONCESSION is the holders' ranking of a year.
// Paginated by limit and offset.
func (s *Server) getGraduatoria(c *gin.Context) error {
	marketID, r, err := pathID(c)
	if err != nil {
		return err
	}
	q := queryParams(c, "year", "kind", "sector", "date")
	today := s.today()
	g := registry.GraduatoriaQuery{Year: today.Year(), Date: today}
	if v := q.str("year"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2000 || n > today.Year() {
			q.bad("year", "want a year from 2000 to %d", today.Year())
		} else {
			g.Year = n
			if n < today.Year() {
				g.Date = time.Date(n, 12, 31, 0, 0, 0, 0, time.UTC)
			}
		}
	}
	if q.str("date") != "" {
		if q.str("year") != "" {
			q.bad("date", "give a date or a year, not both")
		}
		g.Date = q.date("date", today)
		g.Year = g.Date.Year()
		if g.Date.After(today) {
			q.bad("date", "is in the future")
		}
	}
	g.Kind = q.oneOf("kind", presenceKinds...)
	if g.Kind == "" {
		g.Kind = "SPUNTA"
	}
	g.Sector = q.oneOf("sector", "ALIMENTARE", "NON_ALIMENTARE")
	if g.Sector != "" && g.Kind != "SPUNTA" {
		q.bad("sector", "only the SPUNTA graduatoria is per sector")
	}
	pg := q.page()
	if pg.Cursor != "" {
		q.bad("cursor", "the graduatoria has no cursors; use offset")
	}
	if err := q.err(); err != nil {
		return err
	}
	sc, err := s.targetID(c, r)
	if err != nil {
		return err
	}
	out, err := onShard(s, c, r, func(ctx context.Context, sh *shardmap.Shard) (registry.Graduatoria, error) {
		return registry.GetGraduatoria(ctx, sh, sc, marketID, g, pg)
	})
	if err != nil {
		return err
	}
	return writeJSON(c, out)
}
