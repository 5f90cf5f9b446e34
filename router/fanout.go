package router

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// The national fan-out (ARCHITECTURE.md, decision 6). A national request
// asks every region in parallel, one leg per region (several regions may
// share a shard; each leg sets its own region's scope), merges what the
// regions answered and says which did not:
//
//   - at most national.concurrency legs run at once, and every leg's
//     deadline is national.leg_timeout after the fan-out started, so an
//     answer never waits longer than that, however many legs queue;
//   - a shard whose breaker is open fails its legs at once (Shard.Read
//     returns *shardmap.UnavailableError without touching the network);
//   - identical concurrent requests of the same scope share one fan-out
//     (singleflight), and a complete answer is served from memory for
//     national.cache_ttl, keyed by the request and the principal's
//     territory, so principals of different scope never share an answer;
//   - each leg has a span with the region attribute under the request's
//     span, and the dms.national.partial counter counts, by region, the
//     regions missing from partial answers.

// Leg statuses, as every national response reports them per region.
const (
	legOK          = "ok"
	legUnavailable = "unavailable"
	legTimeout     = "timeout"
	legError       = "error"
)

// legStatus is how one region's leg of a fan-out ended.
type legStatus struct {
	Region string `json:"region"`
	Status string `json:"status"`
	MS     int64  `json:"ms"`
}

// national holds what national requests share: the singleflight group, the
// answer cache and the partial-answer counter.
type nationalState struct {
	s        *Server
	group    singleflight.Group
	cache    answerCache
	partials metric.Int64Counter

	// vendorSets keeps each region's set of partite IVA with its version
	// stamp, by shard name and region; a summary leg fetches a set only
	// when the database's stamp differs (registry.Summary).
	vendorMu   sync.Mutex
	vendorSets map[string]vendorSet
	// distinct is the last national count of distinct partite IVA and the
	// sets it merged (region@version, in region order): while no region's
	// set changes, the count is the same.
	distinct struct {
		of string
		n  int64
	}

	// Hooks for tests: legs counts the legs run; onLeg, when set, is called
	// as each leg starts; settings, when set, replaces the configuration's
	// national block.
	legs     atomic.Int64
	onLeg    func(regions.Code)
	settings *national.Config
}

func newNational(s *Server, cfg national.Config) *nationalState {
	n := &nationalState{s: s, settings: &cfg, cache: answerCache{entries: map[string]cacheEntry{}}, vendorSets: map[string]vendorSet{}}
	var err error
	n.partials, err = s.tel.MeterProvider.Meter("github.com/dmshub/dmsrouter/router").Int64Counter("dms.national.partial",
		metric.WithDescription("Regions missing from partial national answers, by route, region and leg status."))
	if err != nil {
		// The SDK does not fail here; a nil counter would panic on Add.
		panic(fmt.Sprintf("national: create counter: %v", err))
	}
	return n
}

func (n *nationalState) config() national.Config {
	return n.settings.WithDefaults()
}

// outcome is one region's answer to a fan-out leg.
type outcome[T any] struct {
	region regions.Code
	status legStatus
	value  T
	err    error
}

// legFunc reads one region: sh serves it, sc is the principal's scope there.
type legFunc[T any] func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (T, error)

// fanOut runs leg for every region, in parallel within the configured
// bounds, and returns the outcomes in region code order. ctx carries the
// request's span; it should not be canceled by any one caller, since a
// shared fan-out serves several.
func fanOut[T any](ctx context.Context, n *nationalState, p auth.Principal, leg legFunc[T]) []outcome[T] {
	cfg := n.config()
	all := regions.All()
	out := make([]outcome[T], len(all))
	ctx, cancel := context.WithTimeout(ctx, cfg.LegTimeout)
	defer cancel()
	slots := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	for i, r := range all {
		o := &out[i]
		o.region = r.Code
		o.status.Region = string(r.Code)
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
			case <-ctx.Done():
				o.err = ctx.Err()
				o.status.Status = legStatusOf(o.err)
				return
			}
			runLeg(ctx, n, p, o, leg)
		}()
	}
	wg.Wait()
	return out
}

// runLeg runs one region's leg in its own span and fills in o.
func runLeg[T any](ctx context.Context, n *nationalState, p auth.Principal, o *outcome[T], leg legFunc[T]) {
	n.legs.Add(1)
	if n.onLeg != nil {
		n.onLeg(o.region)
	}
	start := time.Now()
	ctx, span := n.s.tracer.Start(ctx, "national.leg", trace.WithAttributes(attribute.String("region", string(o.region))))
	defer span.End()
	o.err = func() error {
		sc, err := p.Territory.Scope(o.region, p.Subject)
		if err != nil {
			return err
		}
		sh, err := n.s.shards.For(o.region)
		if err != nil {
			return err
		}
		span.SetAttributes(attribute.String("shard", sh.Name()))
		o.value, err = leg(ctx, sh, sc)
		return err
	}()
	o.status.MS = time.Since(start).Milliseconds()
	o.status.Status = legStatusOf(o.err)
	span.SetAttributes(attribute.String("dms.leg.status", o.status.Status))
	if o.err != nil {
		span.SetStatus(codes.Error, o.status.Status)
		span.RecordError(o.err)
	}
}

func legStatusOf(err error) string {
	var unavailable *shardmap.UnavailableError
	var timeout *shardmap.TimeoutError
	switch {
	case err == nil:
		return legOK
	case errors.As(err, &unavailable):
		return legUnavailable
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return legTimeout
	}
	return legError
}

// legs sorts a fan-out's outcomes: the statuses of every region, and the
// answered outcomes. A leg that failed because of the request itself (a
// cursor another list issued, say) fails the request: clientErr returns it.
type legs[T any] struct {
	statuses []legStatus
	ok       []outcome[T]
	missing  []outcome[T]
}

func sortLegs[T any](outs []outcome[T]) legs[T] {
	var l legs[T]
	for _, o := range outs {
		l.statuses = append(l.statuses, o.status)
		if o.err == nil {
			l.ok = append(l.ok, o)
		} else {
			l.missing = append(l.missing, o)
		}
	}
	return l
}

// clientErr returns the first leg error that is the request's fault, one
// the problem table maps to a 4xx status.
func (l legs[T]) clientErr() error {
	for _, o := range l.missing {
		if o.status.Status != legError {
			continue
		}
		if p, _ := toProblem(o.err); p.Status >= 400 && p.Status < 500 {
			return o.err
		}
	}
	return nil
}

// answer is a merged national response, encoded once and shared by every
// request that the fan-out or the cache serves.
type answer struct {
	body       []byte
	missing    []string      // regions that did not answer, in code order
	retryAfter time.Duration // when a missing region may be back
}

// finish encodes the merged response v of a fan-out whose legs were l,
// logs the legs that failed with an unexpected error and counts the missing
// regions. route names the endpoint in the metric.
func finish[T any](ctx context.Context, n *nationalState, route string, l legs[T], v any) (*answer, error) {
	var buf strings.Builder
	if err := jsonEncode(&buf, v); err != nil {
		return nil, err
	}
	a := &answer{body: []byte(buf.String())}
	for _, o := range l.missing {
		a.missing = append(a.missing, string(o.region))
		var unavailable *shardmap.UnavailableError
		if errors.As(o.err, &unavailable) {
			a.retryAfter = max(a.retryAfter, unavailable.RetryAfter)
		}
		if o.status.Status == legError {
			n.s.log.LogAttrs(ctx, slog.LevelError, "national leg failed", slog.String("route", route),
				slog.String("region", string(o.region)), slog.String("error", o.err.Error()))
		}
		n.partials.Add(ctx, 1, metric.WithAttributes(attribute.String("http.route", route),
			attribute.String("region", string(o.region)), attribute.String("status", o.status.Status)))
	}
	if a.retryAfter == 0 {
		a.retryAfter = time.Second
	}
	return a, nil
}

// partialError is a national answer that misses regions when the caller
// asked for all or nothing (?partial=false), or that no region answered.
type partialError struct {
	missing    []string
	retryAfter time.Duration
}

func (e *partialError) Error() string {
	return "regions did not answer: " + strings.Join(e.missing, ", ")
}

// serve answers a national request: from the cache, from a fan-out that an
// identical request already started, or from a new one that compute runs.
// key identifies the request's answer (endpoint and parameters); the
// principal's territory is added to it. With complete set, an answer that
// misses regions is a *partialError.
func (n *nationalState) serve(c *gin.Context, key string, complete bool, compute func(ctx context.Context) (*answer, error)) error {
	p := principal(c)
	key = p.Territory.String() + "\x00" + key
	span := trace.SpanFromContext(c.Request.Context())
	a, hit := n.cache.get(key, time.Now())
	source := "cache"
	if !hit {
		// The fan-out must outlive a leader that goes away: followers wait on it.
		ctx := context.WithoutCancel(c.Request.Context())
		v, err, shared := n.group.Do(key, func() (any, error) {
			a, err := compute(ctx)
			if err == nil && len(a.missing) == 0 {
				if ttl := n.config().CacheTTL; ttl > 0 {
					n.cache.put(key, a, time.Now().Add(ttl))
				}
			}
			return a, err
		})
		if err != nil {
			return err
		}
		a, source = v.(*answer), "fanout"
		if shared {
			source = "shared"
		}
	}
	span.SetAttributes(attribute.String("dms.national.source", source), attribute.Int("dms.national.missing", len(a.missing)))
	if len(a.missing) == len(regions.All()) || (complete && len(a.missing) > 0) {
		return &partialError{missing: a.missing, retryAfter: a.retryAfter}
	}
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Header("X-Dms-National", source)
	c.Status(http.StatusOK)
	_, err := c.Writer.Write(a.body)
	return err
}

// maxCacheEntries bounds the answer cache; past it, expired entries go first,
// then arbitrary ones.
const maxCacheEntries = 1024

// answerCache keeps complete national answers until they expire.
type answerCache struct {
	mu      sync.Mutex
	entries map[string]cacheEntry
}

type cacheEntry struct {
	a       *answer
	expires time.Time
}

func (c *answerCache) get(key string, now time.Time) (*answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, key)
		return nil, false
	}
	return e.a, true
}

func (c *answerCache) put(key string, a *answer, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCacheEntries {
		now := time.Now()
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < maxCacheEntries {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cacheEntry{a: a, expires: expires}
}

// mergeSorted merges lists, each sorted by cmp, into one sorted list of at
// most limit items (k-way merge; ties keep the earlier list's item first).
func mergeSorted[T any](lists [][]T, cmp func(a, b T) int, limit int) []T {
	heads := make([]int, len(lists))
	var out []T
	for len(out) < limit {
		best := -1
		for i, l := range lists {
			if heads[i] < len(l) && (best < 0 || cmp(l[heads[i]], lists[best][heads[best]]) < 0) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		out = append(out, lists[best][heads[best]])
		heads[best]++
	}
	return out
}

// countDistinct returns the number of distinct values in sets, each sorted
// ascending.
func countDistinct(sets [][]int64) int64 {
	heads := make([]int, len(sets))
	var (
		n    int64
		last int64 = math.MinInt64
	)
	for {
		best := -1
		for i, s := range sets {
			if heads[i] < len(s) && (best < 0 || s[heads[i]] < sets[best][heads[best]]) {
				best = i
			}
		}
		if best < 0 {
			return n
		}
		if v := sets[best][heads[best]]; v != last || n == 0 {
			n++
			last = v
		}
		heads[best]++
	}
}

// compareKey orders by text in byte order, then by id: the order of the
// national lists (their SQL orders text COLLATE "C").
func compareKey(aText string, aID int64, bText string, bID int64) int {
	return cmp.Or(strings.Compare(aText, bText), cmp.Compare(aID, bID))
}
