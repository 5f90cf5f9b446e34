package shardmap

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dmshub/dmsrouter/regions"
)

// Holder holds the current shard map and replaces it atomically on
// Reload. Requests take the map once (Map) and use that snapshot to the
// end, so a reload never changes the shard under a running request; Run
// is how a request whose shard no longer serves its region (the fence's
// ErrNotOwned) reaches the one that does.
type Holder struct {
	opts    Options
	mu      sync.Mutex // serialises reloads
	cur     atomic.Pointer[Map]
	closed  bool
	refresh refresher
}

// refresher coalesces the reloads of the assignments that fenced calls
// ask for (Holder.Refresh).
type refresher struct {
	mu   sync.Mutex
	fn   func(context.Context) error // nil: nothing to reload from
	last *refreshCall                // the newest refresh, running or done
}

// refreshCall is one run of a refresher's fn.
type refreshCall struct {
	start time.Time
	done  chan struct{} // closed when err is set
	err   error
}

// RefreshTimeout bounds one reload of the assignments that a fenced call
// asks for (Holder.Refresh).
const RefreshTimeout = time.Second

// NewHolder opens the map for cfg.
func NewHolder(cfg Config, opts Options) (*Holder, error) {
	m, err := Open(cfg, opts)
	if err != nil {
		return nil, err
	}
	h := &Holder{opts: opts}
	h.cur.Store(m)
	return h, nil
}

// Map returns the current map.
func (h *Holder) Map() *Map { return h.cur.Load() }

// SetRefresher makes fn how the holder reloads its assignments at once
// when a shard's fence says they are stale (Refresh, Run): with a control
// database, control.Follower.Refresh, which reads the current epoch and
// applies it to the holder. fn runs under a deadline of RefreshTimeout.
// Without a refresher (nil, the default), only Reload changes the map.
func (h *Holder) SetRefresher(fn func(context.Context) error) {
	h.refresh.mu.Lock()
	defer h.refresh.mu.Unlock()
	h.refresh.fn = fn
}

// Refresh reloads the assignments through the refresher (SetRefresher)
// and returns the map in place afterwards. A caller that has seen the
// fence refuse a call which started at since shares a refresh that
// started at or after since, running or done, so a burst of fenced
// requests makes one reload; a refresh that started earlier may have read
// the assignments before they changed, so a new one starts. Without a
// refresher, Refresh returns the current map. The error is the
// refresher's, or ctx's when it is done first; the map then stays.
func (h *Holder) Refresh(ctx context.Context, since time.Time) (*Map, error) {
	r := &h.refresh
	r.mu.Lock()
	if r.fn == nil {
		r.mu.Unlock()
		return h.Map(), nil
	}
	call := r.last
	if call == nil || call.start.Before(since) {
		call = &refreshCall{start: time.Now(), done: make(chan struct{})}
		r.last = call
		fn := r.fn
		// The refresh is shared: no one caller's cancellation stops it.
		go func() {
			rctx, cancel := context.WithTimeout(context.Background(), RefreshTimeout)
			defer cancel()
			call.err = fn(rctx)
			close(call.done)
		}()
	}
	r.mu.Unlock()
	select {
	case <-call.done:
		if call.err != nil {
			return h.Map(), fmt.Errorf("reload the assignments: %w", call.err)
		}
		return h.Map(), nil
	case <-ctx.Done():
		return h.Map(), ctx.Err()
	}
}

// Run runs fn on the shard of m (the request's snapshot; nil means the
// current map) that serves region r. When that shard's fence refuses the
// call because its database does not serve r (ErrNotOwned), nothing ran
// there: Run reloads the assignments (Refresh) and runs fn once more on the
// shard the map then names, when that is another shard. Otherwise, and when
// the reload fails, the fence's *FenceError comes back as it is; the
// frozen region's ErrFrozen is never retried (the freeze outlasts a
// request). fn is so called at most twice and must assign its results,
// not append to them. The error of m.For, or of fn's last run, is returned.
func (h *Holder) Run(ctx context.Context, m *Map, r regions.Code, fn func(*Shard) error) error {
	if m == nil {
		m = h.Map()
	}
	sh, err := m.For(r)
	if err != nil {
		return err
	}
	start := time.Now()
	err = fn(sh)
	if !errors.Is(err, ErrNotOwned) {
		return err
	}
	next, rerr := h.Refresh(ctx, start)
	if rerr != nil {
		return fmt.Errorf("%w (and %v)", err, rerr)
	}
	retry, ferr := next.For(r)
	if ferr != nil || retry == sh {
		return err
	}
	return fn(retry)
}

// Change is one difference between two shard maps.
type Change struct {
	Kind   string // "shard added", "shard removed", "shard replaced", "region moved"
	Name   string // the shard, or the region code
	Detail string
}

// Reload validates cfg and swaps in a map built from it. Shards whose
// configuration is unchanged keep their pools and breakers; shards that were
// removed or whose configuration changed are closed once the requests using
// them have released their connections. A configuration that does not
// validate leaves the current map in place and returns the error.
func (h *Holder) Reload(cfg Config) ([]Change, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("reload: holder is closed")
	}
	old := h.cur.Load()
	next, err := open(cfg, h.opts, old)
	if err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	changes := diff(old, next)
	h.cur.Store(next)
	old.obs.unwatch()
	for _, s := range old.shards {
		if next.byName[s.name] != s {
			go s.Close() // waits for in-flight requests to release their connections
		}
	}
	return changes, nil
}

// Close closes the current map. Later reloads fail.
func (h *Holder) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		h.cur.Load().Close()
	}
}

func diff(old, next *Map) []Change {
	var out []Change
	for _, s := range next.shards {
		switch o := old.byName[s.name]; {
		case o == nil:
			out = append(out, Change{Kind: "shard added", Name: s.name})
		case o != s:
			out = append(out, Change{Kind: "shard replaced", Name: s.name, Detail: "new pools"})
		}
	}
	for _, s := range old.shards {
		if next.byName[s.name] == nil {
			out = append(out, Change{Kind: "shard removed", Name: s.name})
		}
	}
	for _, r := range regions.All() {
		from, to := old.byRegion[r.Code], next.byRegion[r.Code]
		if from.name != to.name {
			out = append(out, Change{Kind: "region moved", Name: string(r.Code), Detail: from.name + " -> " + to.name})
		}
	}
	return out
}

// For returns the shard that serves region r in the current map.
func (h *Holder) For(r regions.Code) (*Shard, error) { return h.Map().For(r) }

// Shards returns the shards of the current map in configuration order.
func (h *Holder) Shards() []*Shard { return h.Map().Shards() }

// Config returns the configuration of the current map.
func (h *Holder) Config() Config { return h.Map().Config() }
