package router

import (
	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
)

// stallTypes are the types of a stall; its statuses are
// registry.StallStatuses.
var stallTypes = []string{"FISSO", "SPUNTA", "STRAORDINARIO"}

var (
	checkStallType   = oneOf(stallTypes...)
	checkStallStatus = oneOf(registry.StallStatuses...)
	checkArea        = checkAmount(true, 9999.99)
	checkSide        = checkAmount(true, 999.99)
)

// listStalls is GET /v1/markets/{id}/stalls.
func (s *Server) listStalls(c *gin.Context) error {
	q := queryParams(c, "status", "type")
	f := registry.StallFilter{
		Status: q.enum("status", stallStatus, registry.StallStatuses...),
		Type:   q.enum("type", stallType, stallTypes...),
	}
	pg := q.page()
	if err := q.err(); err != nil {
		return err
	}
	return listOf(s, c, registry.ListStalls, f, pg)
}

// getStall is GET /v1/stalls/{id}.
func (s *Server) getStall(c *gin.Context) error {
	return getByID(s, c, registry.GetStall)
}

type stallBody struct {
	Number *int32   `json:"number"`
	Type   *string  `json:"type"`
	Status *string  `json:"status"`
	AreaMq *float64 `json:"area_mq"`
	WidthM *float64 `json:"width_m"`
	DepthM *float64 `json:"depth_m"`
	// Sector defaults to NON_ALIMENTARE; ReservedFor to no reservation.
	Sector      *string `json:"sector"`
	ReservedFor *string `json:"reserved_for"`
}

// createStall is POST /v1/markets/{id}/stalls.
func (s *Server) createStall(c *gin.Context) error {
	return write(s, c, toPathID, readJSON, checkNewStall, registry.CreateStall)
}

func checkNewStall(k *checks, req writeReq, b *stallBody) (registry.NewStall, regions.Code, error) {
	in := registry.NewStall{
		Number: need(k, "number", b.Number, checkStallNumber),
		Type:   need(k, "type", respelled(b.Type, stallType), checkStallType),
		AreaMq: need(k, "area_mq", b.AreaMq, checkArea),
		Status: optional(k, "status", respelled(b.Status, stallStatus), "LIBERO", checkStallStatus),
		WidthM: optionalPtr(k, "width_m", b.WidthM, checkSide),
		DepthM: optionalPtr(k, "depth_m", b.DepthM, checkSide),
		Sector: optional(k, "sector", b.Sector, "NON_ALIMENTARE", checkSector),
		// A stall reserved for a sector is a stall of that sector.
		ReservedFor: optionalPtr(k, "reserved_for", b.ReservedFor, checkCategory),
	}
	return in, req.region, nil
}

type stallPatchBody struct {
	Number opt[int32]   `json:"number"`
	Type   opt[string]  `json:"type"`
	Status opt[string]  `json:"status"`
	AreaMq opt[float64] `json:"area_mq"`
	WidthM opt[float64] `json:"width_m"`
	DepthM opt[float64] `json:"depth_m"`
	Sector opt[string]  `json:"sector"`
	// ReservedFor null: the stall is no longer reserved.
	ReservedFor opt[string] `json:"reserved_for"`
}

// updateStall is PATCH /v1/stalls/{id}. width_m, depth_m and reserved_for
// may be null. A sector that the concession holding the stall does not
// share, where the market applies sectors, is 409 sector-mismatch.
func (s *Server) updateStall(c *gin.Context) error {
	return write(s, c, toPathID, readJSON, checkStallPatch, registry.UpdateStall)
}

func checkStallPatch(k *checks, req writeReq, b *stallPatchBody) (registry.StallPatch, regions.Code, error) {
	p := registry.StallPatch{
		Number:      patchField(k, "number", b.Number, checkStallNumber),
		Type:        patchField(k, "type", b.Type.respelled(stallType), checkStallType),
		Status:      patchField(k, "status", b.Status.respelled(stallStatus), checkStallStatus),
		AreaMq:      patchField(k, "area_mq", b.AreaMq, checkArea),
		WidthM:      nullableField(k, "width_m", b.WidthM, checkSide),
		DepthM:      nullableField(k, "depth_m", b.DepthM, checkSide),
		Sector:      patchField(k, "sector", b.Sector, checkSector),
		ReservedFor: nullableField(k, "reserved_for", b.ReservedFor, checkCategory),
	}
	k.someChange(p.Number.Set, p.Type.Set, p.Status.Set, p.AreaMq.Set, p.WidthM.Set, p.DepthM.Set, p.Sector.Set, p.ReservedFor.Set)
	return p, req.region, nil
}

func checkStallNumber(n int32) string {
	if n < 1 {
		return "want a positive integer"
	}
	return ""
}
