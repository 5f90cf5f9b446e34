package router

import (
	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
)

// authorisationTypes are the types of an authorisation: A on a stall, B
// itinerant.
var authorisationTypes = []string{"A", "B"}

var checkAuthorisationType = oneOf(authorisationTypes...)

// listAuthorisations is GET /v1/vendors/{id}/authorisations: the vendor's
// authorisations, which every office of its region reads, as its vendors.
func (s *Server) listAuthorisations(c *gin.Context) error {
	return getByID(s, c, registry.ListAuthorisations)
}

type authorisationBody struct {
	Type     *string `json:"type"`
	Sector   *string `json:"sector"`
	Comune   *string `json:"comune"` // the issuing comune
	Number   *string `json:"number"`
	IssuedOn *string `json:"issued_on"`
}

// createAuthorisation is POST /v1/vendors/{id}/authorisations {type,
// sector, comune, number, issued_on}: an authorisation the vendor holds,
// issued by comune. A type A authorisation comes with a stall, so from a
// comune of the vendor's region, whose registry records it (400
// otherwise); a type B one from any comune. A principal narrower than a
// region records only those issued inside its territory (403), as it
// registers vendors there. 409 when the vendor has the same type and
// sector from the same comune.
func (s *Server) createAuthorisation(c *gin.Context) error {
	return write(s, c, toPathID, readJSON, checkNewAuthorisation, registry.CreateAuthorisation)
}

func checkNewAuthorisation(k *checks, req writeReq, b *authorisationBody) (registry.NewAuthorisation, regions.Code, error) {
	in := registry.NewAuthorisation{
		Type:     need(k, "type", b.Type, checkAuthorisationType),
		Sector:   need(k, "sector", b.Sector, checkSector),
		Comune:   need(k, "comune", b.Comune, checkComune),
		Number:   optional(k, "number", b.Number, "", checkOptionalName),
		IssuedOn: dayPtr(optionalPtr(k, "issued_on", b.IssuedOn, checkRegisteredOn)),
	}
	if in.Type == "A" && comuneRegion(in.Comune) != "" && comuneRegion(in.Comune) != req.region {
		k.bad("comune", "a type A authorisation comes with a stall of a comune of region %s, the vendor's here", req.region)
	}
	// A vendor outside the territory stays not found, whatever the body names.
	t := req.p.Territory
	if t.Covers(req.region) && comuneRegion(in.Comune) != "" && !vendorComuneInside(t, in.Comune) {
		k.refuse(forbidden("comune %s is outside territory %s", in.Comune, t))
	}
	return in, req.region, nil
}
