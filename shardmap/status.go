package shardmap

import (
	"net"
	"strconv"
	"time"
)

// ServerStatus is what the router knows of one database server of a
// shard, for the status page: its breaker, its pool, its calls over the
// last minute and, for a replica, its lag as the router last measured it.
type ServerStatus struct {
	// Role is "primary" or "replica"; Index is a replica's place in the
	// shard's replicas list (0 for the primary).
	Role  string `json:"role"`
	Index int    `json:"index"`
	// Address is the server's host:port and database, never a password.
	Address string `json:"address"`
	// Breaker is "closed", "half-open" or "open".
	Breaker string  `json:"breaker"`
	Pool    Pool    `json:"pool"`
	Latency Latency `json:"latency"`
	// Lag is a replica's last measurement; nil for the primary.
	Lag *ReplicaLag `json:"lag,omitempty"`
}

// Pool is a server's connection pool now: connections in use, idle, and
// the most it opens.
type Pool struct {
	InUse int32 `json:"in_use"`
	Idle  int32 `json:"idle"`
	Max   int32 `json:"max"`
}

// Servers returns the shard's primary, then its replicas, as the router
// sees them at now.
func (s *Shard) Servers(now time.Time) []ServerStatus {
	lags := s.ReplicaLags()
	out := make([]ServerStatus, 0, 1+len(s.replicas))
	for i, b := range s.backends() {
		st := b.pool.Stat()
		cc := b.pool.Config().ConnConfig
		ss := ServerStatus{
			Role:    b.role,
			Address: net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))) + "/" + cc.Database,
			Breaker: b.breaker().State().String(),
			Pool:    Pool{InUse: st.AcquiredConns(), Idle: st.IdleConns(), Max: st.MaxConns()},
			Latency: b.calls.summary(now),
		}
		if i > 0 {
			ss.Index = i - 1
			ss.Lag = &lags[i-1]
		}
		out = append(out, ss)
	}
	return out
}
