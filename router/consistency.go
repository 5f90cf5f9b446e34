package router

import (
	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/shardmap"
)

// consistency gives the request read-your-writes (README "Replicas and
// read-your-writes"): it reads the positions of the DMS-Consistency header
// the client sent back, so that the request's reads on a shard go to a
// replica only when it has replayed them, and the answer to a request that
// wrote on a shard with replicas carries the header with its commit's
// position, merged with those the request brought. A malformed header is
// a 400, as any bad input.
func (s *Server) consistency(c *gin.Context) {
	h := c.Request.Header.Values(shardmap.ConsistencyHeader)
	if len(h) > 1 {
		s.writeProblem(c, badField(shardmap.ConsistencyHeader, "send one header, the last a write's answer gave"))
		return
	}
	var sent string
	if len(h) == 1 {
		sent = h[0]
	}
	cons, err := shardmap.ParseConsistency(sent)
	if err != nil {
		s.writeProblem(c, badField(shardmap.ConsistencyHeader, "%v", err))
		return
	}
	c.Request = c.Request.WithContext(shardmap.WithConsistency(c.Request.Context(), cons))
	c.Writer = &consistencyWriter{ResponseWriter: c.Writer, cons: cons}
	c.Next()
}

// consistencyWriter adds the DMS-Consistency header to the answer of a
// request that wrote, just before the status line goes out: after the
// handler's writes, before its body.
type consistencyWriter struct {
	gin.ResponseWriter
	cons *shardmap.Consistency
}

func (w *consistencyWriter) setHeader() {
	if !w.Written() && w.cons.Wrote() {
		w.Header().Set(shardmap.ConsistencyHeader, w.cons.String())
	}
}

func (w *consistencyWriter) WriteHeaderNow() {
	w.setHeader()
	w.ResponseWriter.WriteHeaderNow()
}

func (w *consistencyWriter) Write(b []byte) (int, error) {
	w.setHeader()
	return w.ResponseWriter.Write(b)
}

func (w *consistencyWriter) WriteString(s string) (int, error) {
	w.setHeader()
	return w.ResponseWriter.WriteString(s)
}
