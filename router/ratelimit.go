package router

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// errAtCapacity is an API request refused because the router already
// serves server.max_in_flight of them.
var errAtCapacity = errors.New("the router serves as many requests as server.max_in_flight allows")

// admit serves the request if fewer than Options.MaxInFlight API requests
// are being served, and refuses it at once otherwise, before its token is
// verified: 503 /problems/overloaded with Retry-After. Offered more than it
// can serve, a router without the bound accepted every request, each
// waiting for the CPU behind the others, and answered 430-600 a second
// after seconds; refused at the door, the excess costs little, and with 64
// in flight the router went on answering 1,657-2,354 a second in tens of
// milliseconds, in three runs of four (BENCHMARKS.md, "The open loop's
// 504s" and "Admission at the edge"). The bound is per router, on the
// requests in flight, not on their rate: it holds whatever their cost.
func (s *Server) admit(c *gin.Context) {
	if s.inFlight == nil {
		c.Next()
		return
	}
	select {
	case s.inFlight <- struct{}{}:
		defer func() { <-s.inFlight }()
		c.Next()
	default:
		s.writeProblem(c, errAtCapacity)
	}
}

// maxLimited bounds the principals whose national requests the router
// paces at once; a bucket is a few dozen bytes.
const maxLimited = 16384

// rateLimitedError is a national request over its principal's limit,
// national.rate_limit: the client may retry after retryAfter.
type rateLimitedError struct{ retryAfter time.Duration }

func (e *rateLimitedError) Error() string {
	return fmt.Sprintf("national rate limit: retry after %s", e.retryAfter)
}

// principalLimits holds a token bucket per principal (token subject) for
// the national routes, all with the same settings. A bucket that is full
// is the same as no bucket, so when the set reaches maxLimited the full
// ones are dropped, and an arbitrary eighth more if that is not enough:
// the memory stays bounded whoever calls.
type principalLimits struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	buckets map[string]*rate.Limiter
}

// take takes one request from subject's bucket at now, with perSecond and
// burst as the settings (new settings start every bucket afresh). When the
// bucket is empty it takes nothing and returns how long until it holds a
// request again.
func (l *principalLimits) take(subject string, perSecond float64, burst int, now time.Time) (time.Duration, bool) {
	burst = max(burst, 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if lim := rate.Limit(perSecond); l.buckets == nil || lim != l.limit || burst != l.burst {
		l.limit, l.burst, l.buckets = lim, burst, make(map[string]*rate.Limiter)
	}
	b := l.buckets[subject]
	if b == nil {
		if len(l.buckets) >= maxLimited {
			l.sweep(now)
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[subject] = b
	}
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// sweep drops the buckets that are full at now and, if they were too few,
// an arbitrary eighth of the set.
func (l *principalLimits) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < maxLimited-maxLimited/8 {
			break
		}
		delete(l.buckets, k)
	}
}

// size returns how many principals have a bucket.
func (l *principalLimits) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// limitNational paces each principal's national requests to
// national.rate_limit per second with bursts of national.rate_burst (read
// at every request, so a reload changes them): a request over the limit is
// a 429 with Retry-After.
func (s *Server) limitNational(c *gin.Context) {
	if cfg := s.national.Config(); cfg.RateLimit > 0 {
		if wait, ok := s.nationalLimits.take(principal(c).Subject, cfg.RateLimit, cfg.RateBurst, s.now()); !ok {
			s.writeProblem(c, &rateLimitedError{retryAfter: wait})
			return
		}
	}
	c.Next()
}
