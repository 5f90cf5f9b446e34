package router

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
)

// Page size bounds of every list.
const (
	defaultLimit = 50
	maxLimit     = 100
)

// params reads a request's query parameters, collecting every error so one
// response names all bad fields.
type params struct {
	c    *gin.Context
	errs []FieldError
}

// queryParams checks that the request names only the allowed parameters
// (plus limit, offset and cursor), each at most once.
func queryParams(c *gin.Context, allowed ...string) *params {
	p := &params{c: c}
	ok := map[string]bool{"limit": true, "offset": true, "cursor": true}
	for _, a := range allowed {
		ok[a] = true
	}
	for name, vals := range c.Request.URL.Query() {
		switch {
		case !ok[name]:
			p.bad(name, "unknown query parameter")
		case len(vals) > 1:
			p.bad(name, "given more than once")
		}
	}
	return p
}

func (p *params) bad(field, format string, args ...any) {
	p.errs = append(p.errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// err returns the collected errors as one bad request, or nil.
func (p *params) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return &badRequestError{fields: p.errs}
}

func (p *params) str(name string) string { return p.c.Query(name) }

// oneOf returns the parameter when it is empty or one of values.
func (p *params) oneOf(name string, values ...string) string {
	return p.enum(name, func(s string) string { return s }, values...)
}

// enum is oneOf for a parameter with deprecated spellings: it returns the
// parameter in the current spelling of spell (see marketStatus).
func (p *params) enum(name string, spell func(string) string, values ...string) string {
	v := spell(p.c.Query(name))
	if v == "" {
		return ""
	}
	for _, ok := range values {
		if v == ok {
			return v
		}
	}
	p.bad(name, "must be one of %s", strings.Join(values, ", "))
	return ""
}

// region returns the region parameter, or "" when absent.
func (p *params) region(name string) regions.Code {
	v := p.c.Query(name)
	if v == "" {
		return ""
	}
	r, err := regions.ParseCode(v)
	if err != nil {
		p.bad(name, "unknown region %q: want a two-digit ISTAT code 01..20", v)
	}
	return r
}

// province returns the canonical province code of the parameter, or "".
func (p *params) province(name string) (string, regions.Code) {
	v := p.c.Query(name)
	if v == "" {
		return "", ""
	}
	r, err := regions.ProvinceRegion(v)
	if err != nil {
		p.bad(name, "unknown province %q: want a three-digit ISTAT code", v)
		return "", ""
	}
	canon, _ := regions.CanonicalProvince(v)
	return canon, r
}

// comune returns the comune parameter and its region, or "".
func (p *params) comune(name string) (string, regions.Code) {
	v := p.c.Query(name)
	if v == "" {
		return "", ""
	}
	r, err := regions.ComuneRegion(v)
	if err != nil {
		p.bad(name, "unknown comune %q: want the six-digit ISTAT code of a comune", v)
		return "", ""
	}
	return v, r
}

// id returns an id query parameter and its region, or 0.
func (p *params) id(name string) (int64, regions.Code) {
	v := p.c.Query(name)
	if v == "" {
		return 0, ""
	}
	id, r, err := regions.ParseID(v)
	if err != nil {
		p.bad(name, "not an id")
		return 0, ""
	}
	return id, r
}

// date returns the parameter as a calendar day (UTC midnight), or def when absent.
func (p *params) date(name string, def time.Time) time.Time {
	v := p.c.Query(name)
	if v == "" {
		return def
	}
	d, err := time.Parse(time.DateOnly, v)
	if err != nil {
		p.bad(name, "want a date YYYY-MM-DD")
	}
	return d
}

// page returns limit, offset and cursor.
func (p *params) page() registry.Page {
	pg := registry.Page{Limit: defaultLimit, Cursor: p.c.Query("cursor")}
	if v := p.c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			p.bad("limit", "must be an integer from 1 to %d", maxLimit)
		} else {
			pg.Limit = n
		}
	}
	if v := p.c.Query("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			p.bad("offset", "must be an integer >= 0")
		} else {
			pg.Offset = n
		}
	}
	if pg.Cursor != "" && pg.Offset != 0 {
		p.bad("cursor", "cannot be combined with offset")
	}
	return pg
}

// pathID parses the :id path parameter.
func pathID(c *gin.Context) (int64, regions.Code, error) {
	v := c.Param("id")
	id, r, err := regions.ParseID(v)
	if err != nil {
		if n, perr := strconv.ParseInt(v, 10, 64); perr == nil && n > 0 && strconv.FormatInt(n, 10) == v {
			return 0, "", registry.ErrNotFound // a number, but no region's id: nothing has it
		}
		return 0, "", badField("id", "not an id: want a positive decimal integer")
	}
	return id, r, nil
}
