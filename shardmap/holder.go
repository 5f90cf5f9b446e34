package shardmap

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/dmshub/dmsrouter/regions"
)

// Holder holds the current shard map and replaces it atomically on
// Reload. Requests take the map once (Map) and use that snapshot to the
// end, so a reload never changes the shard under a running request.
type Holder struct {
	opts   Options
	mu     sync.Mutex // serialises reloads
	cur    atomic.Pointer[Map]
	closed bool
}

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
