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
	Epoch   int64  `json:"epoch"`
}

// regionList is the page of regions and the epoch of the assignments it
// shows.
type regionList struct {
	registry.List[regionItem]
	Epoch int64 `json:"epoch"`
}

// listRegions is GET /v1/regions: the 20 regions, each with the shard
// that serves it, that shard's breaker state and the epoch of the
// assignment (the control database's version; 0 when the configuration
// file assigns the regions), paginated by offset. One snapshot of the
// shard map answers the whole request.
func (s *Server) listRegions(c *gin.Context) error {
	q := queryParams(c)
	pg := q.page()
	if pg.Cursor != "" {
		q.bad("cursor", "this list has no cursors; use offset")
	}
	if err := q.err(); err != nil {
		return err
	}
	m := s.shards.Map()
	epoch := m.Config().Epoch
	var items []regionItem
	for _, r := range regions.All() {
		sh, err := m.For(r.Code)
		if err != nil {
			return err
		}
		items = append(items, regionItem{Code: string(r.Code), Name: r.Name, Shard: sh.Name(), Breaker: sh.State(), Epoch: epoch})
	}
	out := regionList{List: registry.List[regionItem]{Limit: pg.Limit, Offset: pg.Offset, Total: int64(len(items)), Items: []regionItem{}}, Epoch: epoch}
	if pg.Offset < len(items) {
		out.Items = items[pg.Offset:min(len(items), pg.Offset+pg.Limit)]
	}
	return writeJSON(c, out)
}
