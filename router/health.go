package router

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/control"
)

// healthz answers 200 while the process serves.
func (s *Server) healthz(c *gin.Context) error {
	return writeJSON(c, gin.H{"status": "ok"})
}

// readiness is the last readiness check, kept for a second so that probes
// do not hammer the shards.
type readiness struct {
	Status string            `json:"status"`
	Shards map[string]string `json:"shards"`
	// Control is the state of the control database's follower, read
	// afresh on every probe; absent without one. An unreachable control
	// database does not make the router unready: it serves the last
	// assignments it applied.
	Control *control.State `json:"control,omitempty"`
}

// readyz answers 200 when at least one shard answers, 503 otherwise.
func (s *Server) readyz(c *gin.Context) error {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if time.Since(s.readyAt) > time.Second {
		s.readyState = s.checkShards(c.Request.Context())
		s.readyAt = time.Now()
	}
	body := s.readyState
	if s.control != nil {
		st := s.control.State()
		body.Control = &st
	}
	status := http.StatusOK
	if body.Status != "ready" {
		status = http.StatusServiceUnavailable
	}
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Status(status)
	return jsonEncode(c.Writer, body)
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
