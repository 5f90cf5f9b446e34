package national

import (
	"cmp"
	"math"
	"strings"
	"sync"
)

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

// vendorSet is a region's set of partite IVA, ascending, and the version
// stamp it was read with. A set is never modified once stored.
type vendorSet struct {
	version int64
	set     []int64
}

// vendorMemory keeps each region's set of partite IVA with its version
// stamp, by shard name and region, so a summary leg fetches a set only when
// the database's stamp differs (registry.Summary); and the last national
// count of distinct partite IVA with the sets it merged. The zero value is
// empty and ready to use.
type vendorMemory struct {
	mu   sync.Mutex
	sets map[string]vendorSet
	// distinct is the last count and the sets it merged (region@version, in
	// region order): while no region's set changes, the count is the same.
	distinct struct {
		of string
		n  int64
	}
}

func (m *vendorMemory) set(key string) vendorSet {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sets[key]
}

func (m *vendorMemory) remember(key string, v vendorSet) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sets == nil {
		m.sets = map[string]vendorSet{}
	}
	m.sets[key] = v
}

// countDistinct returns the number of distinct partite IVA in sets, the
// regions' sets that versions names (each region's version stamp, in region
// order). Merging 40,000-odd numbers costs milliseconds, and a set with a
// stamp never changes, so the count of the same versions is remembered.
// Empty versions (some set has no stamp) are merged afresh every time.
func (m *vendorMemory) countDistinct(versions string, sets [][]int64) int64 {
	if versions != "" {
		m.mu.Lock()
		d := m.distinct
		m.mu.Unlock()
		if d.of == versions {
			return d.n
		}
	}
	c := countDistinct(sets)
	if versions != "" {
		m.mu.Lock()
		m.distinct.of, m.distinct.n = versions, c
		m.mu.Unlock()
	}
	return c
}
