package national

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Leg statuses, as every national answer reports them per region.
const (
	StatusOK          = "ok"
	StatusUnavailable = "unavailable" // the shard's breaker is open, it refused the connection, or its fence refused the region (it moved)
	StatusTimeout     = "timeout"     // the leg's deadline passed
	StatusError       = "error"       // anything else, logged
)

// RegionStatus is how one region's leg of a fan-out ended.
type RegionStatus struct {
	Region string `json:"region"`
	Status string `json:"status"`
	MS     int64  `json:"ms"`
}

// Report is the per-region report every national answer embeds: the status
// of each region's leg in region code order, and whether any region is
// missing from the answer.
type Report struct {
	Partial bool           `json:"partial"`
	Regions []RegionStatus `json:"regions"`
}

// outcome is one region's answer to a fan-out leg.
type outcome[T any] struct {
	region regions.Code
	status RegionStatus
	value  T
	err    error
}

// leg reads one region: sh serves it, sc is the principal's scope there.
type leg[T any] func(ctx context.Context, sh *shardmap.Shard, sc regions.Scope) (T, error)

// legs are a fan-out's outcomes, sorted: the report of every region, and
// the outcomes that answered and that did not, each in region code order.
type legs[T any] struct {
	Report
	ok      []outcome[T]
	missing []outcome[T]
}

// fanOut runs read for every region on req.Map, in parallel within the
// configured bounds. ctx carries the request's span; it should not be
// canceled by any one caller, since a shared fan-out serves several.
//
// Concurrency workers take the regions in turn, rather than a goroutine per
// region waiting for a slot: a leg's goroutine grows its stack down through
// pgx's encoding, and each new goroutine paid for that again (runtime.newstack
// was a tenth of the fan-out's CPU in the router, BENCHMARKS.md).
func fanOut[T any](ctx context.Context, f *Fanout, req Request, read leg[T]) legs[T] {
	cfg := f.config()
	all := regions.All()
	out := make([]outcome[T], len(all))
	for i, r := range all {
		out[i].region = r.Code
		out[i].status.Region = string(r.Code)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.LegTimeout)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(cfg.Concurrency, len(all)) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(out)); i = next.Add(1) - 1 {
				o := &out[i]
				if o.err = ctx.Err(); o.err != nil {
					o.status.Status = statusOf(o.err)
					continue
				}
				runLeg(ctx, f, req, o, read)
			}
		})
	}
	wg.Wait()
	var l legs[T]
	for _, o := range out {
		l.Regions = append(l.Regions, o.status)
		if o.err == nil {
			l.ok = append(l.ok, o)
		} else {
			l.missing = append(l.missing, o)
		}
	}
	l.Partial = len(l.missing) > 0
	return l
}

// runLeg runs one region's leg in its own span and fills in o.
func runLeg[T any](ctx context.Context, f *Fanout, req Request, o *outcome[T], read leg[T]) {
	if f.onLeg != nil {
		f.onLeg(o.region)
	}
	start := time.Now()
	ctx, span := f.tracer.Start(ctx, "national.leg", trace.WithAttributes(attribute.String("region", string(o.region))))
	defer span.End()
	o.err = func() error {
		p := req.Principal
		sc, err := p.Territory.Scope(o.region, p.Subject)
		if err != nil {
			return err
		}
		run := func(sh *shardmap.Shard) error {
			span.SetAttributes(attribute.String("shard", sh.Name()))
			var err error
			o.value, err = read(ctx, sh, sc)
			return err
		}
		if req.Holder != nil {
			return req.Holder.Run(ctx, req.Map, o.region, run)
		}
		sh, err := req.Map.For(o.region)
		if err != nil {
			return err
		}
		return run(sh)
	}()
	o.status.MS = time.Since(start).Milliseconds()
	o.status.Status = statusOf(o.err)
	span.SetAttributes(attribute.String("dms.leg.status", o.status.Status))
	if o.err == nil && span.IsRecording() {
		span.SetAttributes(attribute.Int("dms.leg.rows", rowsOf(o.value)))
	}
	if o.err != nil {
		span.SetStatus(codes.Error, o.status.Status)
		span.RecordError(o.err)
	}
}

// rowsOf returns how many rows a leg's answer v holds, for its span: the
// items of a list or page, none or one for a record the region may not
// have, one for a region's figures.
func rowsOf(v any) int {
	if p, ok := v.(interface{ rows() int }); ok {
		return p.rows()
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Invalid:
		return 0
	case reflect.Slice:
		return rv.Len()
	case reflect.Pointer:
		if rv.IsNil() {
			return 0
		}
	}
	return 1
}

func statusOf(err error) string {
	var unavailable *shardmap.UnavailableError
	var fenced *shardmap.FenceError
	var timeout *shardmap.TimeoutError
	switch {
	case err == nil:
		return StatusOK
	case errors.As(err, &unavailable), errors.As(err, &fenced):
		return StatusUnavailable
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return StatusTimeout
	}
	return StatusError
}

// requestErr returns the first leg error that is the request's fault rather
// than the region's: a cursor the list did not issue. It fails the whole
// answer instead of marking the region missing.
func (l legs[T]) requestErr() error {
	for _, o := range l.missing {
		if o.status.Status == StatusError && errors.Is(o.err, registry.ErrBadCursor) {
			return o.err
		}
	}
	return nil
}
