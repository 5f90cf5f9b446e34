package national

import (
	"cmp"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"
)

func TestMergeHelpers(t *testing.T) {
	if got := countDistinct([][]int64{{1, 3, 5}, {}, {2, 3, 9}, {3, 9, 10}}); got != 6 {
		t.Errorf("countDistinct = %d, want 6", got)
	}
	if got := countDistinct(nil); got != 0 {
		t.Errorf("countDistinct(nil) = %d, want 0", got)
	}
	lists := [][]int{{1, 4, 7}, {2, 2, 8}, {}, {0, 9}}
	if got := mergeSorted(lists, cmp.Compare[int], 5); !slices.Equal(got, []int{0, 1, 2, 2, 4}) {
		t.Errorf("mergeSorted = %v", got)
	}
	if got := mergeSorted(lists, cmp.Compare[int], 100); !sort.IntsAreSorted(got) || len(got) != 8 {
		t.Errorf("mergeSorted all = %v", got)
	}
	// Byte order: upper case before lower case, as COLLATE "C" orders.
	if compareKey("Mercato", 2, "mercato", 1) >= 0 || compareKey("a", 1, "a", 2) >= 0 {
		t.Error("compareKey is not byte order, then id")
	}
}

func TestCountDistinctRemembersVersions(t *testing.T) {
	var m vendorMemory
	a := [][]int64{{1, 2, 3}, {2, 3, 4}}
	b := [][]int64{{1, 2, 3}, {2, 3, 4, 5, 6}}
	for _, tt := range []struct {
		name     string
		versions string
		sets     [][]int64
		want     int64
	}{
		{"first count", "01@7 02@9 ", a, 4},
		// The same versions name the same sets: the count is remembered
		// (the sets passed are not even looked at).
		{"same versions", "01@7 02@9 ", nil, 4},
		{"a changed version", "01@7 02@10 ", b, 6},
		// Without versions (a set without a stamp) nothing is taken from memory.
		{"no versions", "", a, 4},
		{"no versions again", "", b, 6},
	} {
		if got := m.countDistinct(tt.versions, tt.sets); got != tt.want {
			t.Errorf("%s: countDistinct(%q) = %d, want %d", tt.name, tt.versions, got, tt.want)
		}
	}
}

func TestVendorMemory(t *testing.T) {
	var m vendorMemory
	if got := m.set("s03/03"); got.version != 0 || got.set != nil {
		t.Errorf("set of an unknown region = %+v, want the zero set", got)
	}
	m.remember("s03/03", vendorSet{version: 7, set: []int64{1, 2}})
	if got := m.set("s03/03"); got.version != 7 || !slices.Equal(got.set, []int64{1, 2}) {
		t.Errorf("set after remember = %+v", got)
	}
}

func TestAnswerCache(t *testing.T) {
	var c answerCache
	now := time.Now()
	const key = "national\x00summary 2026-06-15"
	a := &Answer{Body: []byte("a")}
	c.put(key, a, now, time.Second)
	if got, ok := c.get(key, now, time.Second); !ok || got != a {
		t.Errorf("get before expiry = %v, %v", got, ok)
	}
	if _, ok := c.get(key, now.Add(time.Second), time.Second); ok {
		t.Error("get at expiry hit the cache")
	}
	// The TTL in force when an answer is read decides: a reload that
	// lowers it expires the answers cached under the old one.
	c.put(key, a, now, time.Minute)
	if _, ok := c.get(key, now.Add(2*time.Second), time.Second); ok {
		t.Error("an answer stored 2s ago hit the cache after the TTL was lowered to 1s")
	}
	c.put(key, a, now, time.Minute)
	if _, ok := c.get(key, now, 0); ok {
		t.Error("an answer hit the cache after the TTL was set to 0")
	}
	for i := range maxCacheEntries + 10 {
		c.put(strconv.Itoa(i), a, now, time.Hour)
	}
	if n := len(c.entries); n > maxCacheEntries {
		t.Errorf("cache holds %d entries, want at most %d", n, maxCacheEntries)
	}
}
