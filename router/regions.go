package router

import (
	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
)

// regionItem is one region and the shard that serves it.
type regionItem struct {
	Code    string `json:"code"`
	Name    string `json:"name"`
	Shard   string `json:"shard"`
	Breaker string `json:"breaker"`
}

// listRegions is GET /v1/regions: the 20 regions, each with the shard
// that serves it and that shard's breaker state, paginated by offset.
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
