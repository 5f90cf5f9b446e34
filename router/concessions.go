package router

import (
	"context"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// expired is the status of a concession past its valid_to: it follows
// from the dates and is never set.
const expired = "SCADUTA"

// settableStatuses are the statuses a concession may be set to: all of
// registry.ConcessionStatuses but SCADUTA.
var settableStatuses = slices.DeleteFunc(slices.Clone(registry.ConcessionStatuses), func(st string) bool { return st == expired })

// checkSettableStatus validates a status a concession is set to.
func checkSettableStatus(st string) string {
	if st == expired {
		return expired + " follows from valid_to and cannot be set"
	}
	return oneOf(settableStatuses...)(st)
}

// concessionYears is how long a new concession lasts when the body does
// not say.
const concessionYears = 10

// listConcessions is GET /v1/concessions: the concessions of one region.
func (s *Server) listConcessions(c *gin.Context) error {
	q := queryParams(c, "region", "market_id", "vendor_id", "status", "expiring_before")
	explicit := q.region("region")
	marketID, marketRegion := q.id("market_id")
	vendorID, vendorRegion := q.id("vendor_id")
	f := registry.ConcessionFilter{
		MarketID:       marketID,
		VendorID:       vendorID,
		Status:         q.oneOf("status", registry.ConcessionStatuses...),
		ExpiringBefore: q.date("expiring_before", time.Time{}),
	}
	pg := q.page()
	if err := q.err(); err != nil {
		return err
	}
	r, err := s.listRegion(c, explicit, marketRegion, vendorRegion)
	if err != nil {
		return err
	}
	return listIn(s, c, r, registry.ListConcessions, f, pg)
}

// getConcession is GET /v1/concessions/{id}.
func (s *Server) getConcession(c *gin.Context) error {
	return getByID(s, c, registry.GetConcession)
}

type concessionBody struct {
	MarketID  *int64  `json:"market_id"`
	StallID   *int64  `json:"stall_id"`
	VendorID  *int64  `json:"vendor_id"`
	ValidFrom *string `json:"valid_from"`
	ValidTo   *string `json:"valid_to"`
	Sector    *string `json:"sector"` // default: the stall's
}

// createConcession is POST /v1/concessions: a new ATTIVA concession; 409
// when another ATTIVA or SOSPESA concession on the stall overlaps its
// dates, when its sector is not the stall's where the market applies
// sectors (rule sector-mismatch), and when the vendor already holds the
// most concessions of the sector at the market in those dates (rule
// concession-cap: 2, 3 at a market of more than 100 stalls).
func (s *Server) createConcession(c *gin.Context) error {
	return write(s, c, toBody, readJSON, checkNewConcession, noID(registry.CreateConcession))
}

// checkNewConcession checks a new concession, which is written in its
// market's region: the stall and the vendor must be of that region too.
func checkNewConcession(k *checks, req writeReq, b *concessionBody) (registry.NewConcession, regions.Code, error) {
	in := registry.NewConcession{
		MarketID:  need(k, "market_id", b.MarketID, checkID),
		StallID:   need(k, "stall_id", b.StallID, checkID),
		VendorID:  need(k, "vendor_id", b.VendorID, checkID),
		ValidFrom: calendarDay(need(k, "valid_from", b.ValidFrom, checkDate)),
		Sector:    optional(k, "sector", b.Sector, "", checkSector),
	}
	if b.ValidTo == nil && !in.ValidFrom.IsZero() {
		in.ValidTo = in.ValidFrom.AddDate(concessionYears, 0, -1)
	} else {
		in.ValidTo = calendarDay(optional(k, "valid_to", b.ValidTo, "", checkDate))
	}
	if !in.ValidFrom.IsZero() && !in.ValidTo.IsZero() && !in.ValidTo.After(in.ValidFrom) {
		k.bad("valid_to", "must be after valid_from")
	}
	r := idRegion(in.MarketID)
	if err := sameRegion(k, req.p, r, "stall_id", idRegion(in.StallID)); err != nil {
		return in, r, err
	}
	if err := sameRegion(k, req.p, r, "vendor_id", idRegion(in.VendorID)); err != nil {
		return in, r, err
	}
	return in, r, nil
}

type statusBody struct {
	Status *string `json:"status"`
	Reason *string `json:"reason"`
}

// statusChange is a concession's new status and why.
type statusChange struct{ status, reason string }

// setConcessionStatus is POST /v1/concessions/{id}/status {status, reason}.
func (s *Server) setConcessionStatus(c *gin.Context) error {
	return write(s, c, toPathID, readJSON, checkStatusChange,
		func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w registry.Write, id int64, in statusChange) (registry.Result[registry.Concession], error) {
			return registry.SetConcessionStatus(ctx, sh, sc, w, id, in.status, in.reason, s.today())
		})
}

func checkStatusChange(k *checks, req writeReq, b *statusBody) (statusChange, regions.Code, error) {
	in := statusChange{
		status: need(k, "status", b.Status, checkSettableStatus),
		reason: need(k, "reason", b.Reason, checkName),
	}
	return in, req.region, nil
}

type renewalBody struct {
	ValidFrom *string `json:"valid_from"`
	ValidTo   *string `json:"valid_to"`
}

// renewConcession is POST /v1/concessions/{id}/renewal {valid_to,
// valid_from?}: a new ATTIVA concession on the same title (title_id kept,
// follows_id the renewed one, follows_by RENEWAL, same vendor, stall and
// sector), from the day after the renewed one's effective end unless
// valid_from says a later day. Only an ATTIVA, SOSPESA or SCADUTA
// concession is renewed (else 409); the grant's rules apply as to a new
// concession.
func (s *Server) renewConcession(c *gin.Context) error {
	return write(s, c, toPathID, readJSON, checkRenewal, registry.RenewConcession)
}

func checkRenewal(k *checks, req writeReq, b *renewalBody) (registry.Renewal, regions.Code, error) {
	in := registry.Renewal{
		ValidFrom: calendarDay(optional(k, "valid_from", b.ValidFrom, "", checkDate)),
		ValidTo:   calendarDay(need(k, "valid_to", b.ValidTo, checkDate)),
	}
	if !in.ValidFrom.IsZero() && !in.ValidTo.IsZero() && !in.ValidTo.After(in.ValidFrom) {
		k.bad("valid_to", "must be after valid_from")
	}
	return in, req.region, nil
}
