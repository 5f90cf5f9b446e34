package router

import (
	"regexp"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
)

// marketStatuses are the statuses of a market.
var marketStatuses = []string{"ACTIVE", "INACTIVE"}

// listMarkets is GET /v1/markets: the markets of one region, or of every
// region merged for a national principal that names none.
func (s *Server) listMarkets(c *gin.Context) error {
	q := queryParams(c, "region", "province", "comune", "status", "q", "partial")
	explicit := q.region("region")
	province, provRegion := q.province("province")
	comune, comRegion := q.comune("comune")
	f := registry.MarketFilter{Province: province, Comune: comune, Status: q.enum("status", marketStatus, marketStatuses...), Q: q.str("q")}
	pg := q.page()
	complete := completeParam(q)
	if err := q.err(); err != nil {
		return err
	}
	if explicit == "" && provRegion == "" && comRegion == "" && isNational(c) {
		return s.nationalMarkets(c, f, pg, complete)
	}
	r, err := s.listRegion(c, explicit, provRegion, comRegion)
	if err != nil {
		return err
	}
	p := principal(c)
	if err := checkInside(p, regions.Provincial, province); err != nil {
		return err
	}
	if err := checkInside(p, regions.Municipal, comune); err != nil {
		return err
	}
	return listIn(s, c, r, registry.ListMarkets, f, pg)
}

// getMarket is GET /v1/markets/{id}.
func (s *Server) getMarket(c *gin.Context) error {
	return getByID(s, c, registry.GetMarket)
}

type marketBody struct {
	Code       *string  `json:"code"`
	Name       *string  `json:"name"`
	Comune     *string  `json:"comune"`
	ComuneName *string  `json:"comune_name"`
	Region     *string  `json:"region"`
	Days       *[]int16 `json:"days"`
	Status     *string  `json:"status"`
	CostPerSqm *float64 `json:"cost_per_sqm"`
}

var (
	checkMarketStatus = oneOf(marketStatuses...)
	checkCostPerSqm   = checkAmount(false, 999999.99)
)

// createMarket is POST /v1/markets. The market's region is its comune's;
// the comune must lie inside the principal's territory.
func (s *Server) createMarket(c *gin.Context) error {
	return write(s, c, toBody, readJSON, checkNewMarket, noID(registry.CreateMarket))
}

func checkNewMarket(k *checks, req writeReq, b *marketBody) (registry.NewMarket, regions.Code, error) {
	in := registry.NewMarket{
		Code:       need(k, "code", b.Code, checkMarketCode),
		Name:       need(k, "name", b.Name, checkName),
		Comune:     need(k, "comune", b.Comune, checkComune),
		ComuneName: optional(k, "comune_name", b.ComuneName, "", checkOptionalName),
		// A market created without days is held every day, as the schema's default.
		Days:       optional(k, "days", b.Days, []int16{1, 2, 3, 4, 5, 6, 7}, checkDays),
		Status:     optional(k, "status", respelled(b.Status, marketStatus), "ACTIVE", checkMarketStatus),
		CostPerSqm: optional(k, "cost_per_sqm", b.CostPerSqm, 0, checkCostPerSqm),
	}
	r := comuneRegion(in.Comune)
	if err := bodyRegion(k, req.p, b.Region, r); err != nil {
		return in, r, err
	}
	if err := checkInside(req.p, regions.Municipal, in.Comune); err != nil {
		k.refuse(err)
	}
	return in, r, nil
}

// bodyRegion checks a body's explicit region against the region its other
// fields imply: outside the territory is forbidden, a different region is
// bad input.
func bodyRegion(k *checks, p auth.Principal, explicit *string, implied regions.Code) error {
	if explicit == nil {
		return nil
	}
	if msg := checkRegion(*explicit); msg != "" {
		k.bad("region", "%s", msg)
		return nil
	}
	r := regions.Code(*explicit)
	if !p.Territory.Covers(r) {
		return forbidden("region %s is outside territory %s", r, p.Territory)
	}
	if implied != "" && r != implied {
		k.bad("region", "region %s does not hold the comune, which is in region %s", r, implied)
	}
	return nil
}

type marketPatchBody struct {
	Code       opt[string]  `json:"code"`
	Name       opt[string]  `json:"name"`
	Comune     opt[string]  `json:"comune"`
	ComuneName opt[string]  `json:"comune_name"`
	Region     opt[string]  `json:"region"`
	Days       opt[[]int16] `json:"days"`
	Status     opt[string]  `json:"status"`
	CostPerSqm opt[float64] `json:"cost_per_sqm"`
}

// updateMarket is PATCH /v1/markets/{id}. A market's comune and region do
// not change.
func (s *Server) updateMarket(c *gin.Context) error {
	return write(s, c, toPathID, readJSON, checkMarketPatch, registry.UpdateMarket)
}

func checkMarketPatch(k *checks, req writeReq, b *marketPatchBody) (registry.MarketPatch, regions.Code, error) {
	if b.Comune.set || b.Region.set {
		k.bad("comune", "a market's comune and region cannot be changed")
	}
	p := registry.MarketPatch{
		Code:       patchField(k, "code", b.Code, checkMarketCode),
		Name:       patchField(k, "name", b.Name, checkName),
		ComuneName: patchField(k, "comune_name", b.ComuneName, checkOptionalName),
		Days:       patchField(k, "days", b.Days, checkDays),
		Status:     patchField(k, "status", b.Status.respelled(marketStatus), checkMarketStatus),
		CostPerSqm: patchField(k, "cost_per_sqm", b.CostPerSqm, checkCostPerSqm),
	}
	k.someChange(p.Code.Set, p.Name.Set, p.ComuneName.Set, p.Days.Set, p.Status.Set, p.CostPerSqm.Set)
	return p, req.region, nil
}

var marketCodePattern = regexp.MustCompile(`^[A-Z]{2}[0-9]{3,5}$`)

func checkMarketCode(s string) string {
	if !marketCodePattern.MatchString(s) {
		return "want two upper-case letters and 3 to 5 digits, such as MI001"
	}
	return ""
}

// checkDays validates a market's days: one to seven distinct ISO weekdays
// (the schema refuses a market without days).
func checkDays(days []int16) string {
	if len(days) == 0 {
		return "want at least one ISO weekday 1 (Monday) to 7 (Sunday)"
	}
	seen := map[int16]bool{}
	for _, d := range days {
		if d < 1 || d > 7 || seen[d] {
			return "want distinct ISO weekdays 1 (Monday) to 7 (Sunday)"
		}
		seen[d] = true
	}
	return ""
}
