package router

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
)

// readWrite reads a write request's body into dst and returns the write's
// metadata. Write requests take no query parameters but those allowed.
func readWrite(c *gin.Context, dst any, allowed ...string) (registry.Write, error) {
	if err := queryParams(c, allowed...).err(); err != nil {
		return registry.Write{}, err
	}
	body, err := readBody(c, maxBody)
	if err != nil {
		return registry.Write{}, err
	}
	if err := decodeBody(body, dst); err != nil {
		return registry.Write{}, err
	}
	return writeMeta(c, body)
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

// createMarket is POST /v1/markets. The market's region is its comune's;
// the comune must lie inside the principal's territory.
func (s *Server) createMarket(c *gin.Context) error {
	var b marketBody
	w, err := readWrite(c, &b)
	if err != nil {
		return err
	}
	var k checks
	// A market created without days is held every day, as the schema's default.
	in := registry.NewMarket{Status: "active", Days: []int16{1, 2, 3, 4, 5, 6, 7}}
	if required(&k, "code", b.Code) {
		in.Code = *b.Code
		if msg := checkMarketCode(in.Code); msg != "" {
			k.bad("code", "%s", msg)
		}
	}
	if required(&k, "name", b.Name) {
		in.Name = *b.Name
		if msg := checkName(in.Name); msg != "" {
			k.bad("name", "%s", msg)
		}
	}
	var r regions.Code
	if required(&k, "comune", b.Comune) {
		in.Comune = *b.Comune
		r = checkComune(&k, "comune", in.Comune)
	}
	if b.ComuneName != nil {
		in.ComuneName = *b.ComuneName
		if msg := checkOptionalName(in.ComuneName); msg != "" {
			k.bad("comune_name", "%s", msg)
		}
	}
	if b.Days != nil {
		in.Days = *b.Days
		if msg := checkDays(in.Days); msg != "" {
			k.bad("days", "%s", msg)
		}
	}
	if b.Status != nil {
		in.Status = *b.Status
		if msg := oneOf("active", "inactive")(in.Status); msg != "" {
			k.bad("status", "%s", msg)
		}
	}
	if b.CostPerSqm != nil {
		in.CostPerSqm = *b.CostPerSqm
		if msg := checkAmount(false, 999999.99)(in.CostPerSqm); msg != "" {
			k.bad("cost_per_sqm", "%s", msg)
		}
	}
	if err := s.bodyRegion(c, &k, b.Region, r); err != nil {
		return err
	}
	if err := k.err(); err != nil {
		return err
	}
	if err := checkInside(principal(c), regions.Municipal, in.Comune); err != nil {
		return err
	}
	sh, sc, err := s.target(c, r)
	if err != nil {
		return err
	}
	res, err := registry.CreateMarket(c.Request.Context(), sh, sc, w, in)
	if err != nil {
		return err
	}
	return writeResult(c, res)
}

// bodyRegion checks a body's explicit region against the region its other
// fields imply: outside the territory is forbidden, a different region is
// bad input.
func (s *Server) bodyRegion(c *gin.Context, k *checks, explicit *string, implied regions.Code) error {
	if explicit == nil {
		return nil
	}
	r, err := regions.ParseCode(*explicit)
	if err != nil {
		k.bad("region", "unknown region %q: want a two-digit ISTAT code 01..20", *explicit)
		return nil
	}
	p := principal(c)
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
	id, r, err := pathID(c)
	if err != nil {
		return err
	}
	var b marketPatchBody
	w, err := readWrite(c, &b)
	if err != nil {
		return err
	}
	var k checks
	if b.Comune.set || b.Region.set {
		k.bad("comune", "a market's comune and region cannot be changed")
	}
	p := registry.MarketPatch{
		Code:       patchField(&k, "code", b.Code, checkMarketCode),
		Name:       patchField(&k, "name", b.Name, checkName),
		ComuneName: patchField(&k, "comune_name", b.ComuneName, checkOptionalName),
		Days:       patchField(&k, "days", b.Days, checkDays),
		Status:     patchField(&k, "status", b.Status, oneOf("active", "inactive")),
		CostPerSqm: patchField(&k, "cost_per_sqm", b.CostPerSqm, checkAmount(false, 999999.99)),
	}
	if !(p.Code.Set || p.Name.Set || p.ComuneName.Set || p.Days.Set || p.Status.Set || p.CostPerSqm.Set) && len(k.errs) == 0 {
		k.bad("body", "names no field to change")
	}
	if err := k.err(); err != nil {
		return err
	}
	sh, sc, err := s.targetID(c, r)
	if err != nil {
		return err
	}
	res, err := registry.UpdateMarket(c.Request.Context(), sh, sc, w, id, p)
	if err != nil {
		return err
	}
	return writeResult(c, res)
}

type stallBody struct {
	Number *int32   `json:"number"`
	Type   *string  `json:"type"`
	Status *string  `json:"status"`
	AreaMq *float64 `json:"area_mq"`
	WidthM *float64 `json:"width_m"`
	DepthM *float64 `json:"depth_m"`
}

var (
	checkStallType   = oneOf("fisso", "spunta", "straordinario")
	checkStallStatus = oneOf("libero", "occupato", "riservato")
	checkArea        = checkAmount(true, 9999.99)
	checkSide        = checkAmount(true, 999.99)
)

// createStall is POST /v1/markets/{id}/stalls.
func (s *Server) createStall(c *gin.Context) error {
	marketID, r, err := pathID(c)
	if err != nil {
		return err
	}
	var b stallBody
	w, err := readWrite(c, &b)
	if err != nil {
		return err
	}
	var k checks
	in := registry.NewStall{Status: "libero", WidthM: b.WidthM, DepthM: b.DepthM}
	if required(&k, "number", b.Number) {
		in.Number = *b.Number
		if msg := checkStallNumber(in.Number); msg != "" {
			k.bad("number", "%s", msg)
		}
	}
	if required(&k, "type", b.Type) {
		in.Type = *b.Type
		if msg := checkStallType(in.Type); msg != "" {
			k.bad("type", "%s", msg)
		}
	}
	if required(&k, "area_mq", b.AreaMq) {
		in.AreaMq = *b.AreaMq
		if msg := checkArea(in.AreaMq); msg != "" {
			k.bad("area_mq", "%s", msg)
		}
	}
	if b.Status != nil {
		in.Status = *b.Status
		if msg := checkStallStatus(in.Status); msg != "" {
			k.bad("status", "%s", msg)
		}
	}
	for field, v := range map[string]*float64{"width_m": b.WidthM, "depth_m": b.DepthM} {
		if v != nil {
			if msg := checkSide(*v); msg != "" {
				k.bad(field, "%s", msg)
			}
		}
	}
	if err := k.err(); err != nil {
		return err
	}
	sh, sc, err := s.targetID(c, r)
	if err != nil {
		return err
	}
	res, err := registry.CreateStall(c.Request.Context(), sh, sc, w, marketID, in)
	if err != nil {
		return err
	}
	return writeResult(c, res)
}

type stallPatchBody struct {
	Number opt[int32]   `json:"number"`
	Type   opt[string]  `json:"type"`
	Status opt[string]  `json:"status"`
	AreaMq opt[float64] `json:"area_mq"`
	WidthM opt[float64] `json:"width_m"`
	DepthM opt[float64] `json:"depth_m"`
}

// updateStall is PATCH /v1/stalls/{id}. width_m and depth_m may be null.
func (s *Server) updateStall(c *gin.Context) error {
	id, r, err := pathID(c)
	if err != nil {
		return err
	}
	var b stallPatchBody
	w, err := readWrite(c, &b)
	if err != nil {
		return err
	}
	var k checks
	p := registry.StallPatch{
		Number: patchField(&k, "number", b.Number, checkStallNumber),
		Type:   patchField(&k, "type", b.Type, checkStallType),
		Status: patchField(&k, "status", b.Status, checkStallStatus),
		AreaMq: patchField(&k, "area_mq", b.AreaMq, checkArea),
		WidthM: nullableField(&k, "width_m", b.WidthM, checkSide),
		DepthM: nullableField(&k, "depth_m", b.DepthM, checkSide),
	}
	if !(p.Number.Set || p.Type.Set || p.Status.Set || p.AreaMq.Set || p.WidthM.Set || p.DepthM.Set) && len(k.errs) == 0 {
		k.bad("body", "names no field to change")
	}
	if err := k.err(); err != nil {
		return err
	}
	sh, sc, err := s.targetID(c, r)
	if err != nil {
		return err
	}
	res, err := registry.UpdateStall(c.Request.Context(), sh, sc, w, id, p)
	if err != nil {
		return err
	}
	return writeResult(c, res)
}

type vendorBody struct {
	PartitaIVA    *string `json:"partita_iva"`
	CodiceFiscale *string `json:"codice_fiscale"`
	Denominazione *string `json:"denominazione"`
	Comune        *string `json:"comune"`
	Stato         *string `json:"stato"`
	Region        *string `json:"region"`
}

var checkVendorStato = oneOf("ATTIVA", "SOSPESA", "CESSATA")

// createVendor is POST /v1/vendors. Vendors are a region's registry: the
// vendor is registered in the region of its comune, or in the region the
// body names (a national principal registering a vendor of one region in
// another, where it also trades). Both must lie in the territory.
func (s *Server) createVendor(c *gin.Context) error {
	var b vendorBody
	w, err := readWrite(c, &b)
	if err != nil {
		return err
	}
	var k checks
	in := registry.NewVendor{Stato: "ATTIVA"}
	if required(&k, "partita_iva", b.PartitaIVA) {
		in.PartitaIVA = *b.PartitaIVA
		if msg := checkPartitaIVA(in.PartitaIVA); msg != "" {
			k.bad("partita_iva", "%s", msg)
		}
	}
	if required(&k, "codice_fiscale", b.CodiceFiscale) {
		in.CodiceFiscale = *b.CodiceFiscale
		if msg := checkCodiceFiscale(in.CodiceFiscale); msg != "" {
			k.bad("codice_fiscale", "%s", msg)
		}
	}
	if required(&k, "denominazione", b.Denominazione) {
		in.Denominazione = *b.Denominazione
		if msg := checkName(in.Denominazione); msg != "" {
			k.bad("denominazione", "%s", msg)
		}
	}
	var comuneRegion regions.Code
	if required(&k, "comune", b.Comune) {
		in.Comune = *b.Comune
		comuneRegion = checkComune(&k, "comune", in.Comune)
	}
	if b.Stato != nil {
		in.Stato = *b.Stato
		if msg := checkVendorStato(in.Stato); msg != "" {
			k.bad("stato", "%s", msg)
		}
	}
	r := comuneRegion
	p := principal(c)
	if b.Region != nil {
		explicit, err := regions.ParseCode(*b.Region)
		if err != nil {
			k.bad("region", "unknown region %q: want a two-digit ISTAT code 01..20", *b.Region)
		}
		r = explicit
	}
	if err := k.err(); err != nil {
		return err
	}
	if !p.Territory.Covers(comuneRegion) {
		return forbidden("comune %s is outside territory %s", in.Comune, p.Territory)
	}
	sh, sc, err := s.target(c, r)
	if err != nil {
		return err
	}
	res, err := registry.CreateVendor(c.Request.Context(), sh, sc, w, in)
	if err != nil {
		return err
	}
	return writeResult(c, res)
}

type vendorPatchBody struct {
	PartitaIVA    opt[string] `json:"partita_iva"`
	CodiceFiscale opt[string] `json:"codice_fiscale"`
	Denominazione opt[string] `json:"denominazione"`
	Comune        opt[string] `json:"comune"`
	Stato         opt[string] `json:"stato"`
}

// updateVendor is PATCH /v1/vendors/{id}. A new comune must lie in the
// principal's territory, as for createVendor.
func (s *Server) updateVendor(c *gin.Context) error {
	id, r, err := pathID(c)
	if err != nil {
		return err
	}
	var b vendorPatchBody
	w, err := readWrite(c, &b)
	if err != nil {
		return err
	}
	var k checks
	p := registry.VendorPatch{
		PartitaIVA:    patchField(&k, "partita_iva", b.PartitaIVA, checkPartitaIVA),
		CodiceFiscale: patchField(&k, "codice_fiscale", b.CodiceFiscale, checkCodiceFiscale),
		Denominazione: patchField(&k, "denominazione", b.Denominazione, checkName),
		Comune:        patchField(&k, "comune", b.Comune, nil),
		Stato:         patchField(&k, "stato", b.Stato, checkVendorStato),
	}
	var comuneRegion regions.Code
	if p.Comune.Set {
		comuneRegion = checkComune(&k, "comune", p.Comune.V)
	}
	if p == (registry.VendorPatch{}) && len(k.errs) == 0 {
		k.bad("body", "names no field to change")
	}
	if err := k.err(); err != nil {
		return err
	}
	sh, sc, err := s.targetID(c, r)
	if err != nil {
		return err
	}
	if pr := principal(c); comuneRegion != "" && !pr.Territory.Covers(comuneRegion) {
		return forbidden("comune %s is outside territory %s", p.Comune.V, pr.Territory)
	}
	res, err := registry.UpdateVendor(c.Request.Context(), sh, sc, w, id, p)
	if err != nil {
		return err
	}
	return writeResult(c, res)
}

type concessionBody struct {
	MarketID  *int64  `json:"market_id"`
	StallID   *int64  `json:"stall_id"`
	VendorID  *int64  `json:"vendor_id"`
	ValidFrom *string `json:"valid_from"`
	ValidTo   *string `json:"valid_to"`
}

// concessionYears is how long a new concession lasts when the body does
// not say.
const concessionYears = 10

// createConcession is POST /v1/concessions: a new ATTIVA concession; 409
// when another ATTIVA concession on the stall overlaps its dates.
func (s *Server) createConcession(c *gin.Context) error {
	var b concessionBody
	w, err := readWrite(c, &b)
	if err != nil {
		return err
	}
	var k checks
	var in registry.NewConcession
	var marketRegion, stallRegion, vendorRegion regions.Code
	if required(&k, "market_id", b.MarketID) {
		in.MarketID, marketRegion = *b.MarketID, checkID(&k, "market_id", *b.MarketID)
	}
	if required(&k, "stall_id", b.StallID) {
		in.StallID, stallRegion = *b.StallID, checkID(&k, "stall_id", *b.StallID)
	}
	if required(&k, "vendor_id", b.VendorID) {
		in.VendorID, vendorRegion = *b.VendorID, checkID(&k, "vendor_id", *b.VendorID)
	}
	if required(&k, "valid_from", b.ValidFrom) {
		in.ValidFrom = parseDay(&k, "valid_from", *b.ValidFrom)
	}
	if b.ValidTo != nil {
		in.ValidTo = parseDay(&k, "valid_to", *b.ValidTo)
	} else if !in.ValidFrom.IsZero() {
		in.ValidTo = in.ValidFrom.AddDate(concessionYears, 0, -1)
	}
	if !in.ValidFrom.IsZero() && !in.ValidTo.IsZero() && !in.ValidTo.After(in.ValidFrom) {
		k.bad("valid_to", "must be after valid_from")
	}
	p := principal(c)
	r := marketRegion
	if err := sameRegion(&k, p, r, "stall_id", stallRegion); err != nil {
		return err
	}
	if err := sameRegion(&k, p, r, "vendor_id", vendorRegion); err != nil {
		return err
	}
	if err := k.err(); err != nil {
		return err
	}
	sh, sc, err := s.target(c, r)
	if err != nil {
		return err
	}
	res, err := registry.CreateConcession(c.Request.Context(), sh, sc, w, in)
	if err != nil {
		return err
	}
	return writeResult(c, res)
}

type statusBody struct {
	Status *string `json:"status"`
	Reason *string `json:"reason"`
}

// setConcessionStatus is POST /v1/concessions/{id}/status {status, reason}.
func (s *Server) setConcessionStatus(c *gin.Context) error {
	id, r, err := pathID(c)
	if err != nil {
		return err
	}
	var b statusBody
	w, err := readWrite(c, &b)
	if err != nil {
		return err
	}
	var k checks
	if required(&k, "status", b.Status) {
		if *b.Status == "SCADUTA" {
			k.bad("status", "SCADUTA follows from valid_to and cannot be set")
		} else if msg := oneOf("ATTIVA", "SOSPESA", "REVOCATA", "CESSATA")(*b.Status); msg != "" {
			k.bad("status", "%s", msg)
		}
	}
	if required(&k, "reason", b.Reason) {
		if msg := checkName(*b.Reason); msg != "" {
			k.bad("reason", "%s", msg)
		}
	}
	if err := k.err(); err != nil {
		return err
	}
	sh, sc, err := s.targetID(c, r)
	if err != nil {
		return err
	}
	res, err := registry.SetConcessionStatus(c.Request.Context(), sh, sc, w, id, *b.Status, *b.Reason, s.today())
	if err != nil {
		return err
	}
	return writeResult(c, res)
}

type checkInBody struct {
	VendorID  *int64  `json:"vendor_id"`
	StallID   *int64  `json:"stall_id"`
	Kind      *string `json:"kind"`
	CheckinAt *string `json:"checkin_at"`
}

var checkKind = oneOf("CONCESSION", "SPUNTA")

// checkIn is POST /v1/markets/{id}/presences: one check-in, on the day of
// checkin_at in Europe/Rome (default now). 201 with the new presence; 200
// with the recorded one when the same check-in was recorded before; 409 for
// any other second check-in of the vendor or the stall that day, and for a
// holder whose concession is SOSPESA or REVOCATA.
func (s *Server) checkIn(c *gin.Context) error {
	marketID, r, err := pathID(c)
	if err != nil {
		return err
	}
	var b checkInBody
	w, err := readWrite(c, &b)
	if err != nil {
		return err
	}
	var k checks
	in := registry.CheckIn{MarketID: marketID, StallID: b.StallID, CheckinAt: s.now()}
	var vendorRegion, stallRegion regions.Code
	if required(&k, "vendor_id", b.VendorID) {
		in.VendorID, vendorRegion = *b.VendorID, checkID(&k, "vendor_id", *b.VendorID)
	}
	if b.StallID != nil {
		stallRegion = checkID(&k, "stall_id", *b.StallID)
	}
	if required(&k, "kind", b.Kind) {
		in.Kind = *b.Kind
		if msg := checkKind(in.Kind); msg != "" {
			k.bad("kind", "%s", msg)
		}
	}
	if b.CheckinAt != nil {
		t, err := time.Parse(time.RFC3339, *b.CheckinAt)
		if err != nil {
			k.bad("checkin_at", "want an RFC 3339 time, such as 2026-06-15T07:30:00+02:00")
		}
		in.CheckinAt, in.Given = t, true
	}
	in.Date = s.day(in.CheckinAt)
	if in.Date.After(s.today()) {
		k.bad("checkin_at", "is in the future")
	}
	p := principal(c)
	if p.Territory.Covers(r) {
		if err := sameRegion(&k, p, r, "vendor_id", vendorRegion); err != nil {
			return err
		}
		if err := sameRegion(&k, p, r, "stall_id", stallRegion); err != nil {
			return err
		}
	}
	if err := k.err(); err != nil {
		return err
	}
	sh, sc, err := s.targetID(c, r)
	if err != nil {
		return err
	}
	res, err := registry.CheckInVendor(c.Request.Context(), sh, sc, w, in)
	if err != nil {
		return err
	}
	return writeResult(c, res)
}

// day returns the calendar day of t in Europe/Rome as a UTC-midnight time.
func (s *Server) day(t time.Time) time.Time {
	y, m, d := t.In(s.rome).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

type batchRowBody struct {
	MarketID  *int64  `json:"market_id"`
	VendorID  *int64  `json:"vendor_id"`
	StallID   *int64  `json:"stall_id"`
	Date      *string `json:"date"`
	Kind      *string `json:"kind"`
	CheckinAt *string `json:"checkin_at"`
}

// ingestPresences is POST /v1/presences/batch {"rows": [...]}: up to
// registry.MaxBatchRows presences of one region, all or nothing. 201 with
// the counts when it inserted rows, 200 when every row was a duplicate, 422
// with the reason of each rejected row when any was rejected (nothing is
// written then).
func (s *Server) ingestPresences(c *gin.Context) error {
	if err := queryParams(c).err(); err != nil {
		return err
	}
	body, err := readBody(c, maxBatchBody)
	if err != nil {
		return err
	}
	raw, err := decodeBatch(body)
	if err != nil {
		return err
	}
	w, err := writeMeta(c, body)
	if err != nil {
		return err
	}
	var k checks
	rows := make([]registry.PresenceRow, len(raw))
	today := s.today()
	var r regions.Code // the batch's region: its first id's
	p := principal(c)
	for i := range raw {
		if err := s.batchRow(&k, p, &r, today, i, &raw[i], &rows[i]); err != nil {
			return err
		}
	}
	if err := k.err(); err != nil {
		return err
	}
	sh, sc, err := s.target(c, r)
	if err != nil {
		return err
	}
	res, err := registry.IngestPresences(c.Request.Context(), sh, sc, w, rows, today)
	if err != nil {
		return err
	}
	return writeResult(c, res)
}

// batchRow checks row i of a batch, b, into row. The ids of every row must
// lie in one region, *r, the first id's; an id of a region outside the
// territory is forbidden. Field names are built only for bad fields, so a
// good batch of 10,000 rows builds no strings.
func (s *Server) batchRow(k *checks, p Principal, r *regions.Code, today time.Time, i int, b *batchRowBody, row *registry.PresenceRow) error {
	field := func(name string) string { return "rows[" + strconv.Itoa(i) + "]." + name }
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
	switch {
	case b.Kind == nil:
		k.bad(field("kind"), "required")
	case *b.Kind != "CONCESSION" && *b.Kind != "SPUNTA":
		k.bad(field("kind"), "must be one of CONCESSION, SPUNTA")
	default:
		row.Kind = *b.Kind
	}
	if b.CheckinAt != nil {
		t, err := time.Parse(time.RFC3339, *b.CheckinAt)
		switch {
		case err != nil:
			k.bad(field("checkin_at"), "want an RFC 3339 time, such as 2026-06-15T07:30:00+02:00")
		case !row.Date.IsZero() && !s.day(t).Equal(row.Date):
			k.bad(field("checkin_at"), "is not on the row's date in Europe/Rome")
		default:
			row.CheckinAt = &t
		}
	}
	return nil
}

// decodeBatch decodes {"rows": [...]}: with decodeBatchFast when it can,
// else with encoding/json, and when that fails the body is read again a
// row at a time, so that the error names the row. More than
// registry.MaxBatchRows rows is errTooLarge.
func decodeBatch(body []byte) ([]batchRowBody, error) {
	rows, ok := decodeBatchFast(body)
	if !ok {
		var err error
		if rows, err = decodeBatchJSON(body); err != nil {
			return nil, err
		}
	}
	switch {
	case len(rows) > registry.MaxBatchRows:
		return nil, tooLarge("a batch holds at most %d rows", registry.MaxBatchRows)
	case len(rows) == 0:
		return nil, badField("rows", "want 1 to %d rows", registry.MaxBatchRows)
	}
	return rows, nil
}

// decodeBatchJSON decodes {"rows": [...]} with encoding/json.
func decodeBatchJSON(body []byte) ([]batchRowBody, error) {
	var b struct {
		Rows []batchRowBody `json:"rows"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		if _, rowErr := decodeBatchRows(body); rowErr != nil {
			return nil, rowErr
		}
		return nil, jsonError("", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badField("body", "unexpected data after the JSON object")
	}
	return b.Rows, nil
}

// decodeBatchRows decodes {"rows": [...]} a row at a time, so a bad row is
// named by its index.
func decodeBatchRows(body []byte) ([]batchRowBody, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	delim := func(want json.Delim) error {
		t, err := dec.Token()
		if err != nil {
			return jsonError("", err)
		}
		if d, ok := t.(json.Delim); !ok || d != want {
			if want == '[' {
				return badField("rows", "want an array of rows")
			}
			return badField("body", "want a JSON object {\"rows\": [...]}")
		}
		return nil
	}
	if err := delim('{'); err != nil {
		return nil, err
	}
	var rows []batchRowBody
	seen := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, jsonError("", err)
		}
		if name, _ := t.(string); name != "rows" {
			return nil, badField(name, "unknown field")
		}
		if seen {
			return nil, badField("rows", "given more than once")
		}
		seen = true
		if err := delim('['); err != nil {
			return nil, err
		}
		for dec.More() {
			if len(rows) == registry.MaxBatchRows {
				return nil, tooLarge("a batch holds at most %d rows", registry.MaxBatchRows)
			}
			var row batchRowBody
			if err := dec.Decode(&row); err != nil {
				return nil, jsonError("rows["+strconv.Itoa(len(rows))+"].", err)
			}
			rows = append(rows, row)
		}
		if err := delim(']'); err != nil {
			return nil, err
		}
	}
	if err := delim('}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badField("body", "unexpected data after the JSON object")
	}
	return rows, nil
}

// runSpunta is POST /v1/markets/{id}/spunta?date=: the spunta of that market
// day (default today); running it again returns the first outcome.
func (s *Server) runSpunta(c *gin.Context) error {
	marketID, r, err := pathID(c)
	if err != nil {
		return err
	}
	q := queryParams(c, "date")
	day := q.date("date", s.today())
	if day.After(s.today()) {
		q.bad("date", "is in the future")
	}
	if err := q.err(); err != nil {
		return err
	}
	body, err := readBody(c, maxBody)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) > 0 {
		var empty struct{}
		if err := decodeBody(body, &empty); err != nil {
			return err
		}
	}
	w, err := writeMeta(c, body)
	if err != nil {
		return err
	}
	sh, sc, err := s.targetID(c, r)
	if err != nil {
		return err
	}
	res, err := registry.RunSpunta(c.Request.Context(), sh, sc, w, marketID, day)
	if err != nil {
		return err
	}
	return writeResult(c, res)
}

// getGraduatoria is GET /v1/markets/{id}/graduatoria?year=&kind=: the
// market's ranking for the year (default this year) and kind (default
// SPUNTA), paginated by limit and offset.
func (s *Server) getGraduatoria(c *gin.Context) error {
	marketID, r, err := pathID(c)
	if err != nil {
		return err
	}
	q := queryParams(c, "year", "kind")
	today := s.today()
	year := today.Year()
	if v := q.str("year"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2000 || n > today.Year() {
			q.bad("year", "want a year from 2000 to %d", today.Year())
		} else {
			year = n
		}
	}
	kind := q.oneOf("kind", "SPUNTA", "CONCESSION")
	if kind == "" {
		kind = "SPUNTA"
	}
	pg := q.page()
	if pg.Cursor != "" {
		q.bad("cursor", "the graduatoria has no cursors; use offset")
	}
	if err := q.err(); err != nil {
		return err
	}
	sh, sc, err := s.targetID(c, r)
	if err != nil {
		return err
	}
	g, err := registry.GetGraduatoria(c.Request.Context(), sh, sc, marketID, year, kind, today, pg)
	if err != nil {
		return err
	}
	return writeJSON(c, g)
}
