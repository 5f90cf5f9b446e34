package router

import (
	"context"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// listAbsences is GET /v1/concessions/{id}/absences?year=: the holder's
// absences on the held days of that calendar year (default this year in
// Europe/Rome), justified or not, and the unjustified ones counted against
// the market's limit.
func (s *Server) listAbsences(c *gin.Context) error {
	q := queryParams(c, "year")
	today := s.today()
	year := today.Year()
	if v := q.str("year"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < firstMarketDay.Year() || n > today.Year() {
			q.bad("year", "want a year from %d to %d", firstMarketDay.Year(), today.Year())
		} else {
			year = n
		}
	}
	if err := q.err(); err != nil {
		return err
	}
	return readByID(s, c, func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, id int64) (registry.Absences, error) {
		return registry.ListAbsences(ctx, sh, sc, id, year, today)
	})
}

// absenceBody is the body of PUT /v1/concessions/{id}/absences/{date},
// with the path's date.
type absenceBody struct {
	Reason *string `json:"reason"`
	Note   *string `json:"note"`
	date   string
}

// justification is a checked justification.
type justification struct {
	day          time.Time
	reason, note string
}

// justifyAbsence is PUT /v1/concessions/{id}/absences/{date} {reason,
// note}: the office justifies the holder's absence that day (MALATTIA,
// GRAVIDANZA, FORZA_MAGGIORE, or ALTRO with a note), so it does not count
// toward decadenza. 201 when new, 200 when it replaced one; 409 when the
// day is no absence (not held, not over, the holder present), 422 when it
// lies outside the concession's term.
func (s *Server) justifyAbsence(c *gin.Context) error {
	return write(s, c, toPathID, withPathDate(readJSON[absenceBody], func(b *absenceBody) *string { return &b.date }),
		s.checkJustification,
		func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w registry.Write, id int64, in justification) (registry.Result[registry.Justification], error) {
			return registry.JustifyAbsence(ctx, sh, sc, w, id, in.day, s.today(), in.reason, in.note)
		})
}

func (s *Server) checkJustification(k *checks, req writeReq, b *absenceBody) (justification, regions.Code, error) {
	in := justification{
		day:    s.pastPathDay(k, b.date),
		reason: need(k, "reason", b.Reason, oneOf(registry.AbsenceReasons...)),
		note:   optional(k, "note", b.Note, "", checkOptionalName),
	}
	if in.reason == "ALTRO" && checkName(in.note) != "" {
		k.bad("note", "required with reason ALTRO: 1 to 200 characters saying why")
	}
	return in, req.region, nil
}

// unjustifyAbsence is DELETE /v1/concessions/{id}/absences/{date}: the
// office withdraws its justification, and the absence counts again. 200
// with the justification removed; 404 when there was none. The body is
// empty or {}.
func (s *Server) unjustifyAbsence(c *gin.Context) error {
	return write(s, c, toPathID, withPathDate(readOptionalJSON[struct{ date string }], func(b *struct{ date string }) *string { return &b.date }),
		func(k *checks, req writeReq, b *struct{ date string }) (time.Time, regions.Code, error) {
			return pathDay(k, b.date), req.region, nil
		},
		registry.UnjustifyAbsence)
}
