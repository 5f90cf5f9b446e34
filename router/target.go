package router

import (
	"context"
	"errors"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// target returns the scope of region r for the request's principal. A
// region outside the territory is errForbidden.
func (s *Server) target(c *gin.Context, r regions.Code) (regions.Scope, error) {
	p := principal(c)
	sc, err := p.Territory.Scope(r, p.Subject)
	if err != nil {
		return sc, forbidden("region %s is outside territory %s", r, p.Territory)
	}
	c.Set(ctxRegion, string(r))
	return sc, nil
}

// targetID is target for an id: an id outside the territory is not found,
// so its existence is never revealed.
func (s *Server) targetID(c *gin.Context, r regions.Code) (regions.Scope, error) {
	sc, err := s.target(c, r)
	if errors.Is(err, errForbidden) {
		return sc, registry.ErrNotFound
	}
	return sc, err
}

// onShard runs call on the shard that serves region r, and is the one
// place where every read and write of a region meets the fence
// (shardmap.Holder.Run): when the shard's database says it no longer
// serves r, the router reloads its assignments and call runs once more on
// the shard that serves r now. Nothing ran on the first shard, so a write
// is retried too. call may so run twice.
func onShard[T any](s *Server, c *gin.Context, r regions.Code, call func(context.Context, *shardmap.Shard) (T, error)) (T, error) {
	ctx := c.Request.Context()
	var v T
	err := s.shards.Run(ctx, nil, r, func(sh *shardmap.Shard) error {
		var err error
		v, err = call(ctx, sh)
		return err
	})
	return v, err
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
func checkInside(p auth.Principal, level regions.Level, code string) error {
	if code == "" {
		return nil
	}
	u := regions.Territory{Level: level, Code: code}
	if p.Territory.Includes(u) || u.Includes(p.Territory) {
		return nil
	}
	return forbidden("%s is outside territory %s", u, p.Territory)
}

// getByID answers GET /{id} routes, which take no query parameters.
func getByID[T any](s *Server, c *gin.Context, get func(context.Context, *shardmap.Shard, regions.Scope, int64) (T, error)) error {
	if err := queryParams(c).err(); err != nil {
		return err
	}
	return readByID(s, c, get)
}

// readByID answers a read of the row the path's :id names, or of rows of
// the market it names: the id's region picks the shard, an id outside the
// territory is not found, and read reads in scope.
func readByID[T any](s *Server, c *gin.Context, read func(context.Context, *shardmap.Shard, regions.Scope, int64) (T, error)) error {
	id, r, err := pathID(c)
	if err != nil {
		return err
	}
	sc, err := s.targetID(c, r)
	if err != nil {
		return err
	}
	v, err := onShard(s, c, r, func(ctx context.Context, sh *shardmap.Shard) (T, error) {
		return read(ctx, sh, sc, id)
	})
	if err != nil {
		return err
	}
	return writeJSON(c, v)
}

// listOf answers a list of the rows of the market the path's :id names,
// with filter f and page pg.
func listOf[F, T any](s *Server, c *gin.Context, list func(context.Context, *shardmap.Shard, regions.Scope, int64, F, registry.Page) (T, error), f F, pg registry.Page) error {
	return readByID(s, c, func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope, id int64) (T, error) {
		return list(ctx, sh, sc, id, f, pg)
	})
}

// listIn answers a list of region r with filter f and page pg.
func listIn[F, T any](s *Server, c *gin.Context, r regions.Code, list func(context.Context, *shardmap.Shard, regions.Scope, F, registry.Page) (T, error), f F, pg registry.Page) error {
	sc, err := s.target(c, r)
	if err != nil {
		return err
	}
	v, err := onShard(s, c, r, func(ctx context.Context, sh *shardmap.Shard) (T, error) {
		return list(ctx, sh, sc, f, pg)
	})
	if err != nil {
		return err
	}
	return writeJSON(c, v)
}
