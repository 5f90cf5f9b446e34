package router

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// target returns the shard and scope that serve region r for the
// request's principal. A region outside the territory is errForbidden.
func (s *Server) target(c *gin.Context, r regions.Code) (*shardmap.Shard, regions.Scope, error) {
	p := principal(c)
	sc, err := p.Territory.Scope(r, p.Subject)
	if err != nil {
		return nil, sc, forbidden("region %s is outside territory %s", r, p.Territory)
	}
	sh, err := s.shards.For(r)
	if err != nil {
		return nil, sc, err
	}
	c.Set(ctxRegion, string(r))
	return sh, sc, nil
}

// targetID is target for an id: an id outside the territory is not found,
// so its existence is never revealed.
func (s *Server) targetID(c *gin.Context, r regions.Code) (*shardmap.Shard, regions.Scope, error) {
	sh, sc, err := s.target(c, r)
	if errors.Is(err, errForbidden) {
		return nil, sc, registry.ErrNotFound
	}
	return sh, sc, err
}

// listRegion decides which region a list request reads: the explicit
// region parameter, else the region implied by the other filters, else the
// principal's own region. The implied regions must agree, and an explicit
// filter outside the territory is forbidden.
func (s *Server) listRegion(c *gin.Context, explicit regions.Code, implied ...regions.Code) (regions.Code, error) {
	p := principal(c)
	r := explicit
	for _, i := range implied {
		if i == "" {
			continue
		}
		if r != "" && i != r {
			return "", badField("region", "the filters name different regions (%s and %s)", r, i)
		}
		r = i
	}
	if r == "" {
		own, ok := p.Territory.Region()
		if !ok {
			return "", badField("region", "a national principal must name ?region= (two-digit code)")
		}
		r = own
	}
	if !p.Territory.Covers(r) {
		return "", forbidden("region %s is outside territory %s", r, p.Territory)
	}
	return r, nil
}

// checkInside returns errForbidden when a province or comune filter lies
// outside the principal's territory.
func checkInside(p Principal, level regions.Level, code string) error {
	if code == "" {
		return nil
	}
	u := regions.Territory{Level: level, Code: code}
	if p.Territory.Includes(u) || u.Includes(p.Territory) {
		return nil
	}
	return forbidden("%s is outside territory %s", u, p.Territory)
}

// getByID answers GET /{id} routes: the id's region picks the shard, an id
// outside the territory is not found, and get reads the row in scope.
func getByID[T any](s *Server, c *gin.Context, get func(context.Context, *shardmap.Shard, regions.Scope, int64) (T, error)) error {
	if err := queryParams(c).err(); err != nil {
		return err
	}
	id, r, err := pathID(c)
	if err != nil {
		return err
	}
	sh, sc, err := s.targetID(c, r)
	if err != nil {
		return err
	}
	v, err := get(c.Request.Context(), sh, sc, id)
	if err != nil {
		return err
	}
	return writeJSON(c, v)
}

func (s *Server) healthz(c *gin.Context) error {
	return writeJSON(c, gin.H{"status": "ok"})
}

// readiness is the last readiness check, kept for a second so that probes
// do not hammer the shards.
type readiness struct {
	Status string            `json:"status"`
	Shards map[string]string `json:"shards"`
}

// readyz answers 200 when at least one shard answers, 503 otherwise.
func (s *Server) readyz(c *gin.Context) error {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if time.Since(s.readyAt) > time.Second {
		s.readyState = s.checkShards(c.Request.Context())
		s.readyAt = time.Now()
	}
	status := http.StatusOK
	if s.readyState.Status != "ready" {
		status = http.StatusServiceUnavailable
	}
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Status(status)
	return jsonEncode(c.Writer, s.readyState)
}

func (s *Server) checkShards(ctx context.Context) readiness {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r := readiness{Status: "unavailable", Shards: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, sh := range s.shards.Shards() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			state := "ok"
			if err := sh.Ping(ctx); err != nil {
				state = "unavailable"
			}
			mu.Lock()
			defer mu.Unlock()
			r.Shards[sh.Name()] = state
			if state == "ok" {
				r.Status = "ready"
			}
		}()
	}
	wg.Wait()
	return r
}

// regionItem is one region and the shard that serves it.
type regionItem struct {
	Code    string `json:"code"`
	Name    string `json:"name"`
	Shard   string `json:"shard"`
	Breaker string `json:"breaker"`
}

func (s *Server) listRegions(c *gin.Context) error {
	q := queryParams(c)
	pg := q.page()
	if pg.Cursor != "" {
		q.bad("cursor", "this list has no cursors; use offset")
	}
	if err := q.err(); err != nil {
		return err
	}
	var items []regionItem
	for _, r := range regions.All() {
		sh, err := s.shards.For(r.Code)
		if err != nil {
			return err
		}
		items = append(items, regionItem{Code: string(r.Code), Name: r.Name, Shard: sh.Name(), Breaker: sh.State()})
	}
	out := registry.List[regionItem]{Limit: pg.Limit, Offset: pg.Offset, Total: int64(len(items)), Items: []regionItem{}}
	if pg.Offset < len(items) {
		out.Items = items[pg.Offset:min(len(items), pg.Offset+pg.Limit)]
	}
	return writeJSON(c, out)
}

func (s *Server) listMarkets(c *gin.Context) error {
	q := queryParams(c, "region", "province", "comune", "status", "q", "partial")
	explicit := q.region("region")
	province, provRegion := q.province("province")
	comune, comRegion := q.comune("comune")
	f := registry.MarketFilter{Province: province, Comune: comune, Status: q.oneOf("status", "active", "inactive"), Q: q.str("q")}
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
	sh, sc, err := s.target(c, r)
	if err != nil {
		return err
	}
	list, err := registry.ListMarkets(c.Request.Context(), sh, sc, f, pg)
	if err != nil {
		return err
	}
	return writeJSON(c, list)
}

func (s *Server) getMarket(c *gin.Context) error {
	return getByID(s, c, registry.GetMarket)
}

func (s *Server) listStalls(c *gin.Context) error {
	q := queryParams(c, "status", "type")
	f := registry.StallFilter{
		Status: q.oneOf("status", "libero", "occupato", "riservato"),
		Type:   q.oneOf("type", "fisso", "spunta", "straordinario"),
	}
	pg := q.page()
	if err := q.err(); err != nil {
		return err
	}
	id, r, err := pathID(c)
	if err != nil {
		return err
	}
	sh, sc, err := s.targetID(c, r)
	if err != nil {
		return err
	}
	list, err := registry.ListStalls(c.Request.Context(), sh, sc, id, f, pg)
	if err != nil {
		return err
	}
	return writeJSON(c, list)
}

func (s *Server) getStall(c *gin.Context) error {
	return getByID(s, c, registry.GetStall)
}

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
	sh, sc, err := s.target(c, r)
	if err != nil {
		return err
	}
	list, err := registry.ListVendors(c.Request.Context(), sh, sc, f, pg)
	if err != nil {
		return err
	}
	return writeJSON(c, list)
}

func (s *Server) getVendor(c *gin.Context) error {
	return getByID(s, c, registry.GetVendor)
}

func (s *Server) listConcessions(c *gin.Context) error {
	q := queryParams(c, "region", "market_id", "vendor_id", "status", "expiring_before")
	explicit := q.region("region")
	marketID, marketRegion := q.id("market_id")
	vendorID, vendorRegion := q.id("vendor_id")
	f := registry.ConcessionFilter{
		MarketID:       marketID,
		VendorID:       vendorID,
		Status:         q.oneOf("status", "ATTIVA", "SOSPESA", "REVOCATA", "CESSATA", "SCADUTA"),
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
	sh, sc, err := s.target(c, r)
	if err != nil {
		return err
	}
	list, err := registry.ListConcessions(c.Request.Context(), sh, sc, f, pg)
	if err != nil {
		return err
	}
	return writeJSON(c, list)
}

func (s *Server) getConcession(c *gin.Context) error {
	return getByID(s, c, registry.GetConcession)
}

// today returns the calendar day in Europe/Rome as a UTC-midnight time.
func (s *Server) today() time.Time {
	y, m, d := s.now().In(s.rome).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func (s *Server) listPresences(c *gin.Context) error {
	q := queryParams(c, "date")
	day := q.date("date", s.today())
	pg := q.page()
	if err := q.err(); err != nil {
		return err
	}
	id, r, err := pathID(c)
	if err != nil {
		return err
	}
	sh, sc, err := s.targetID(c, r)
	if err != nil {
		return err
	}
	list, err := registry.ListPresences(c.Request.Context(), sh, sc, id, day, pg)
	if err != nil {
		return err
	}
	return writeJSON(c, list)
}
