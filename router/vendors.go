package router

import (
	"errors"
	"regexp"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/taxcode"
)

// vendorStatuses are the statuses of a vendor.
var vendorStatuses = []string{"ATTIVA", "SOSPESA", "CESSATA"}

var checkVendorStatus = oneOf(vendorStatuses...)

// The shapes a vendor list filter accepts; a vendor's own fields are
// checked with their check digits (checkPartitaIVA, checkCodiceFiscale).
var (
	partitaIVAPattern    = regexp.MustCompile(`^[0-9]{11}$`)
	codiceFiscalePattern = regexp.MustCompile(`^([A-Z0-9]{16}|[0-9]{11})$`)
)

// listVendors is GET /v1/vendors: the vendors of one region, or, for a
// national principal asking by partita IVA alone, the vendor in every region.
func (s *Server) listVendors(c *gin.Context) error {
	q := queryParams(c, "region", "partita_iva", "codice_fiscale", "q", "partial")
	explicit := q.region("region")
	f := registry.VendorFilter{PartitaIVA: q.str("partita_iva"), CodiceFiscale: q.str("codice_fiscale"), Q: q.str("q")}
	if f.PartitaIVA != "" && !partitaIVAPattern.MatchString(f.PartitaIVA) {
		q.bad("partita_iva", "want 11 digits")
	}
	if f.CodiceFiscale != "" && !codiceFiscalePattern.MatchString(f.CodiceFiscale) {
		q.bad("codice_fiscale", "want 16 letters and digits or 11 digits")
	}
	pg := q.page()
	complete := completeParam(q)
	if err := q.err(); err != nil {
		return err
	}
	if explicit == "" && f.PartitaIVA != "" && f.CodiceFiscale == "" && f.Q == "" && isNational(c) {
		return s.nationalVendor(c, f.PartitaIVA, complete)
	}
	r, err := s.listRegion(c, explicit)
	if err != nil {
		return err
	}
	return listIn(s, c, r, registry.ListVendors, f, pg)
}

// getVendor is GET /v1/vendors/{id}.
func (s *Server) getVendor(c *gin.Context) error {
	return getByID(s, c, registry.GetVendor)
}

type vendorBody struct {
	PartitaIVA    *string   `json:"partita_iva"`
	CodiceFiscale *string   `json:"codice_fiscale"`
	Denominazione *string   `json:"denominazione"`
	Comune        *string   `json:"comune"`
	Status        *string   `json:"status"`
	Stato         *string   `json:"stato"` // the deprecated name of status
	Region        *string   `json:"region"`
	RegisteredOn  *string   `json:"registered_on"`
	Categories    *[]string `json:"categories"`
}

// createVendor is POST /v1/vendors. Vendors are a region's registry: the
// vendor is registered in the region of its comune, or in the region the
// body names (a national principal registering a vendor of one region in
// another, where it also trades). Both must lie in the territory.
func (s *Server) createVendor(c *gin.Context) error {
	return write(s, c, toBody, readJSON, checkNewVendor, noID(registry.CreateVendor))
}

func checkNewVendor(k *checks, req writeReq, b *vendorBody) (registry.NewVendor, regions.Code, error) {
	statusKey, status := renamedKey(k, "status", b.Status, "stato", b.Stato, present[string])
	in := registry.NewVendor{
		PartitaIVA:    need(k, "partita_iva", b.PartitaIVA, checkPartitaIVA),
		CodiceFiscale: need(k, "codice_fiscale", b.CodiceFiscale, checkCodiceFiscale),
		Denominazione: need(k, "denominazione", b.Denominazione, checkName),
		Comune:        need(k, "comune", b.Comune, checkComune),
		Status:        optional(k, statusKey, status, "ATTIVA", checkVendorStatus),
		RegisteredOn:  dayPtr(optionalPtr(k, "registered_on", b.RegisteredOn, checkRegisteredOn)),
		Categories:    slices.Sorted(slices.Values(optional(k, "categories", b.Categories, []string{}, checkCategories))),
	}
	r := comuneRegion(in.Comune)
	if !req.p.Territory.Covers(r) {
		k.refuse(forbidden("comune %s is outside territory %s", in.Comune, req.p.Territory))
	}
	if b.Region != nil {
		checkField(k, "region", *b.Region, checkRegion)
		r = regions.Code(*b.Region)
	}
	return in, r, nil
}

type vendorPatchBody struct {
	PartitaIVA    opt[string]   `json:"partita_iva"`
	CodiceFiscale opt[string]   `json:"codice_fiscale"`
	Denominazione opt[string]   `json:"denominazione"`
	Comune        opt[string]   `json:"comune"`
	Status        opt[string]   `json:"status"`
	Stato         opt[string]   `json:"stato"`         // the deprecated name of status
	RegisteredOn  opt[string]   `json:"registered_on"` // null: unknown
	Categories    opt[[]string] `json:"categories"`    // []: none
}

// errVendorStatus is a change of a vendor's stato by a principal narrower
// than a region.
var errVendorStatus = errors.New("only a regional or national principal may change the status of a vendor")

// updateVendor is PATCH /v1/vendors/{id}. Every office of the region reads
// the region's vendors, but a principal narrower than a region (province,
// comune, market) may change only the vendors registered inside its
// territory (a market's: its comune), and keep them there; another vendor
// of the region, visible to it, is forbidden (403) rather than not found,
// which the database decides (migration 00011: a market's comune is known
// only there). Suspending or reactivating a vendor (its stato), which
// decides whether it may check in anywhere in the region, needs a regional
// or national principal. A vendor of a region outside the territory is not
// found.
func (s *Server) updateVendor(c *gin.Context) error {
	return write(s, c, toPathID, readJSON, checkVendorPatch, registry.UpdateVendor)
}

func checkVendorPatch(k *checks, req writeReq, b *vendorPatchBody) (registry.VendorPatch, regions.Code, error) {
	statusKey, status := renamedKey(k, "status", b.Status, "stato", b.Stato, opt[string].present)
	p := registry.VendorPatch{
		PartitaIVA:    patchField(k, "partita_iva", b.PartitaIVA, checkPartitaIVA),
		CodiceFiscale: patchField(k, "codice_fiscale", b.CodiceFiscale, checkCodiceFiscale),
		Denominazione: patchField(k, "denominazione", b.Denominazione, checkName),
		Comune:        patchField(k, "comune", b.Comune, nil),
		Status:        patchField(k, statusKey, status, checkVendorStatus),
		Categories:    patchField(k, "categories", b.Categories, checkCategories),
	}
	registered := nullableField(k, "registered_on", b.RegisteredOn, checkRegisteredOn)
	p.RegisteredOn = registry.Field[*time.Time]{Set: registered.Set, V: dayPtr(registered.V)}
	if p.Categories.Set {
		slices.Sort(p.Categories.V)
	}
	if p.Comune.Set {
		checkField(k, "comune", p.Comune.V, checkComune)
	}
	k.someChange(p.PartitaIVA.Set, p.CodiceFiscale.Set, p.Denominazione.Set, p.Comune.Set, p.Status.Set, p.RegisteredOn.Set, p.Categories.Set)
	// A vendor outside the territory stays not found, whatever the body
	// names, so only a vendor inside it is refused a comune outside or a
	// change of stato.
	t := req.p.Territory
	if !t.Covers(req.region) {
		return p, req.region, nil
	}
	if p.Status.Set && t.Level > regions.Regional {
		k.refuse(errVendorStatus)
	}
	if p.Comune.Set && comuneRegion(p.Comune.V) != "" && !vendorComuneInside(t, p.Comune.V) {
		k.refuse(forbidden("comune %s is outside territory %s", p.Comune.V, t))
	}
	return p, req.region, nil
}

// vendorComuneInside reports whether territory t may register a vendor it
// changes in comune: a comune of a region t covers for a national or
// regional territory, of the province or the comune itself for those, and
// of the region for a market, whose comune only the database knows.
func vendorComuneInside(t regions.Territory, comune string) bool {
	switch t.Level {
	case regions.Provincial, regions.Municipal:
		return t.Includes(regions.Territory{Level: regions.Municipal, Code: comune})
	}
	return t.Covers(comuneRegion(comune))
}

// checkRegisteredOn validates the day of a business's registration
// (registro imprese).
func checkRegisteredOn(s string) string { return checkDateBetween(s, "1900-01-01", "2100-12-31") }

// dayPtr returns the day s (checked), or nil when s is nil.
func dayPtr(s *string) *time.Time {
	if s == nil {
		return nil
	}
	d := calendarDay(*s)
	return &d
}

func checkPartitaIVA(s string) string {
	if !taxcode.ValidPartitaIVA(s) {
		return "not a valid partita IVA: want 11 digits with a valid check digit"
	}
	return ""
}

func checkCodiceFiscale(s string) string {
	if !taxcode.ValidCodiceFiscale(s) {
		return "not a valid codice fiscale: want 16 upper-case letters and digits with a valid check letter, or a company's 11 digits"
	}
	return ""
}
