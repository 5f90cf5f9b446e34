package router

import (
	"context"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// presenceKinds are the kinds of a presence: a concession holder on its
// stall, or a spuntista.
var presenceKinds = []string{"CONCESSION", "SPUNTA"}

var checkKind = oneOf(presenceKinds...)

// rfc3339Hint is what a bad time is told to look like.
const rfc3339Hint = "want an RFC 3339 time, such as 2026-06-15T07:30:00+02:00"

// today returns the calendar day in Europe/Rome as a UTC-midnight time.
func (s *Server) today() time.Time {
	return s.day(s.now())
}

// day returns the calendar day of t in Europe/Rome as a UTC-midnight time.
func (s *Server) day(t time.Time) time.Time {
	y, m, d := t.In(s.rome).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// listPresences is GET /v1/markets/{id}/presences?date=: the market's
// presences on that day (default today).
func (s *Server) listPresences(c *gin.Context) error {
	q := queryParams(c, "date")
	day := q.date("date", s.today())
	pg := q.page()
	if err := q.err(); err != nil {
		return err
	}
	return listOf(s, c, registry.ListPresences, day, pg)
}

type checkInBody struct {
	VendorID  *int64  `json:"vendor_id"`
	StallID   *int64  `json:"stall_id"`
	Kind      *string `json:"kind"`
	CheckinAt *string `json:"checkin_at"`
}

// checkIn is POST /v1/markets/{id}/presences: one check-in, on the day of
// checkin_at in Europe/Rome (default now). 201 with the new presence; 200
// with the recorded one when the same check-in was recorded before; 409 for
// any other second check-in of the vendor or the stall that day, for a
// holder whose concession is SOSPESA, REVOCATA or DECADUTA, and (rule
// market-day-cancelled) on a cancelled market day. A spuntista checking in
// after the day's call is recorded with outcome LATE.
func (s *Server) checkIn(c *gin.Context) error {
	return write(s, c, toPathID, readJSON, s.checkCheckIn, noID(registry.CheckInVendor))
}

func (s *Server) checkCheckIn(k *checks, req writeReq, b *checkInBody) (registry.CheckIn, regions.Code, error) {
	in := registry.CheckIn{
		MarketID:  req.id,
		VendorID:  need(k, "vendor_id", b.VendorID, checkID),
		StallID:   optionalPtr(k, "stall_id", b.StallID, checkID),
		Kind:      need(k, "kind", b.Kind, checkKind),
		CheckinAt: s.now(),
	}
	if b.CheckinAt != nil {
		t, err := time.Parse(time.RFC3339, *b.CheckinAt)
		if err != nil {
			k.bad("checkin_at", rfc3339Hint)
		}
		in.CheckinAt, in.Given = t, true
	}
	in.Date = s.day(in.CheckinAt)
	if in.Date.After(s.today()) {
		k.bad("checkin_at", "is in the future")
	}
	r := req.region
	if req.p.Territory.Covers(r) {
		if err := sameRegion(k, req.p, r, "vendor_id", idRegion(in.VendorID)); err != nil {
			return in, r, err
		}
		if in.StallID != nil {
			if err := sameRegion(k, req.p, r, "stall_id", idRegion(*in.StallID)); err != nil {
				return in, r, err
			}
		}
	}
	return in, r, nil
}

// presenceBatch is a checked batch, the day it was checked against, and
// for a CSV batch the line each row starts on.
type presenceBatch struct {
	rows  []registry.PresenceRow
	today time.Time
	lines []int
}

// ingestPresences is POST /v1/presences/batch, {"rows": [...]} or CSV
// with a header row (text/csv): up to registry.MaxBatchRows presences of
// one region, all or nothing. 201 with the counts when it inserted rows,
// 200 when every row was a duplicate, 422 with the reason of each rejected
// row when any was rejected (nothing is written then), and its rule when a
// market-day rule refused it (a row on a cancelled day:
// market-day-cancelled). The rows of a CSV batch are named by the line
// their record starts on, line[7].vendor_id; those of JSON by index,
// rows[6].vendor_id.
func (s *Server) ingestPresences(c *gin.Context) error {
	return write(s, c, toBody, readBatch, s.checkBatch, noID(ingestBatch))
}

// readBatch reads a batch's body, JSON or CSV, up to maxBatchBody bytes,
// and decodes it; the fingerprint of its Idempotency-Key hashes the bytes
// as they are read, as sent (a batch is not compacted first).
func readBatch(c *gin.Context, b *batchReq) (registry.Write, error) {
	if err := queryParams(c).err(); err != nil {
		return registry.Write{}, err
	}
	ct := c.GetHeader("Content-Type")
	csv := isCSV(ct)
	if !csv && !isJSON(ct) {
		return registry.Write{}, fmt.Errorf("%w: send the body as application/json or text/csv", errMediaType)
	}
	body, err := limitBody(c, maxBatchBody)
	if err != nil {
		return registry.Write{}, err
	}
	var h hash.Hash
	if c.Request.Header.Get("Idempotency-Key") != "" {
		h = fingerprint(c)
		if csv {
			h.Write([]byte("text/csv\n"))
		}
		body = io.TeeReader(body, h)
	}
	if csv {
		*b, err = decodeBatchCSV(body, maxBatchBody)
	} else {
		var raw []byte
		if raw, err = readAllBody(body, maxBatchBody); err == nil {
			b.rows, err = decodeBatch(raw)
		}
	}
	if err != nil {
		return registry.Write{}, err
	}
	return keyedWrite(c, func() []byte { return h.Sum(nil) })
}

// checkBatch checks every row of a batch; the batch writes the region of
// its first id.
func (s *Server) checkBatch(k *checks, req writeReq, raw *batchReq) (presenceBatch, regions.Code, error) {
	b := presenceBatch{rows: make([]registry.PresenceRow, len(raw.rows)), today: s.today(), lines: raw.lines}
	var r regions.Code
	for i := range raw.rows {
		if err := s.batchRow(k, req.p, &r, b.today, raw.field(i), &raw.rows[i], &b.rows[i]); err != nil {
			return b, r, err
		}
	}
	return b, r, nil
}

func ingestBatch(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w registry.Write, b presenceBatch) (registry.Result[registry.BatchOutcome], error) {
	res, err := registry.IngestPresences(ctx, sh, sc, w, b.rows, b.today)
	if b.lines != nil && err != nil {
		err = &linesError{err: err, lines: b.lines}
	}
	return res, err
}

// batchRow checks a row of a batch, b, into row; field names its fields.
// The ids of every row must lie in one region, *r, the first id's; an id
// of a region outside the territory is forbidden. Field names are built
// only for bad fields, so a good batch of 10,000 rows builds no strings.
func (s *Server) batchRow(k *checks, p auth.Principal, r *regions.Code, today time.Time, field func(name string) string, b *batchRowBody, row *registry.PresenceRow) error {
	if b.MarketID == nil {
		k.bad(field("market_id"), "required")
	}
	if b.VendorID == nil {
		k.bad(field("vendor_id"), "required")
	}
	for _, id := range [3]struct {
		name string
		v    *int64
	}{{"market_id", b.MarketID}, {"vendor_id", b.VendorID}, {"stall_id", b.StallID}} {
		if id.v == nil {
			continue
		}
		ir := idRegion(*id.v)
		if ir == "" {
			k.bad(field(id.name), "not an id")
			continue
		}
		if *r == "" {
			*r = ir
		}
		if ir != *r || !p.Territory.Covers(ir) {
			if err := sameRegion(k, p, *r, field(id.name), ir); err != nil {
				return err
			}
		}
	}
	if b.MarketID != nil {
		row.MarketID = *b.MarketID
	}
	if b.VendorID != nil {
		row.VendorID = *b.VendorID
	}
	row.StallID = b.StallID
	if b.Date == nil {
		k.bad(field("date"), "required")
	} else if d, err := time.Parse(time.DateOnly, *b.Date); err != nil {
		k.bad(field("date"), "want a date YYYY-MM-DD")
	} else if d.After(today) {
		k.bad(field("date"), "is in the future")
	} else {
		row.Date = d
	}
	if b.Kind == nil {
		k.bad(field("kind"), "required")
	} else if msg := checkKind(*b.Kind); msg != "" {
		k.bad(field("kind"), "%s", msg)
	} else {
		row.Kind = *b.Kind
	}
	if b.CheckinAt != nil {
		t, err := time.Parse(time.RFC3339, *b.CheckinAt)
		switch {
		case err != nil:
			k.bad(field("checkin_at"), rfc3339Hint)
		case !row.Date.IsZero() && !s.day(t).Equal(row.Date):
			k.bad(field("checkin_at"), "is not on the row's date in Europe/Rome")
		default:
			row.CheckinAt = &t
		}
	}
	return nil
}
