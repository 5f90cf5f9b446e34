package router

import (
	"context"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// subingressoBody is the body of POST /v1/concessions/{id}/subingresso.
type subingressoBody struct {
	VendorID *int64  `json:"vendor_id"`
	Date     *string `json:"date"`
}

// subingresso is POST /v1/concessions/{id}/subingresso {vendor_id, date}:
// the business holding the concession is sold to vendor_id, who takes over
// the title from date (default today in Rome; never after it). 201 with
// the buyer's new concession; 409 with rule buyer-not-active,
// concession-cap or title-ended.
func (s *Server) subingresso(c *gin.Context) error {
	today := s.today()
	return write(s, c, toPathID, readJSON,
		func(k *checks, req writeReq, b *subingressoBody) (registry.Transfer, regions.Code, error) {
			in := registry.Transfer{
				BuyerID: need(k, "vendor_id", b.VendorID, checkID),
				Date:    calendarDay(optional(k, "date", b.Date, today.Format("2006-01-02"), checkDate)),
			}
			if in.Date.After(today) {
				k.bad("date", "a subingresso takes effect on a day up to today, not after")
			}
			return in, req.region, sameRegion(k, req.p, req.region, "vendor_id", idRegion(in.BuyerID))
		},
		func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, w registry.Write, id int64, in registry.Transfer) (registry.Result[registry.Concession], error) {
			return registry.Subingresso(ctx, sh, sc, w, id, in, today)
		})
}
