package logbucket

import (
	"math"
	"testing"
)

// TestBuckets checks, for the sub-bucket bits the module uses and a few
// more, that the buckets tile the values without gaps or overlaps, that
// Index puts both bounds of a bucket in it, and that a bucket is no wider
// than 2^-subBits of its lower bound above the exact range.
func TestBuckets(t *testing.T) {
	for _, subBits := range []int{0, 1, 2, 7, 10} {
		last := Count(64, subBits) - 1
		if got := Index(math.MaxUint64, subBits); got != last {
			t.Errorf("Index(MaxUint64, %d) = %d, want %d", subBits, got, last)
		}
		if got := Upper(last, subBits); got != math.MaxUint64 {
			t.Errorf("Upper(%d, %d) = %d, want MaxUint64", last, subBits, got)
		}
		if Lower(0, subBits) != 0 {
			t.Errorf("Lower(0, %d) = %d, want 0", subBits, Lower(0, subBits))
		}
		exact := uint64(2) << subBits
		for i := range last + 1 {
			lo, hi := Lower(i, subBits), Upper(i, subBits)
			if Index(lo, subBits) != i || Index(hi, subBits) != i || hi < lo {
				t.Fatalf("subBits %d: bucket %d holds %d..%d, but Index gives %d and %d", subBits, i, lo, hi, Index(lo, subBits), Index(hi, subBits))
			}
			if i < last && Lower(i+1, subBits) != hi+1 {
				t.Fatalf("subBits %d: bucket %d ends at %d, bucket %d starts at %d", subBits, i, hi, i+1, Lower(i+1, subBits))
			}
			if lo < exact && lo != hi {
				t.Fatalf("subBits %d: bucket %d holds %d..%d, want one value below %d", subBits, i, lo, hi, exact)
			}
			if lo >= exact && (hi-lo+1)<<subBits > lo {
				t.Fatalf("subBits %d: bucket %d holds %d..%d, wider than 2^-%d of %d", subBits, i, lo, hi, subBits, lo)
			}
		}
	}
}

// TestCount checks that Count(n) buckets hold exactly the values below 2^n.
func TestCount(t *testing.T) {
	for _, c := range []struct{ n, subBits int }{{3, 2}, {27, 2}, {64, 2}, {8, 7}, {64, 7}} {
		top := uint64(math.MaxUint64)
		if c.n < 64 {
			top = 1<<c.n - 1
		}
		if got, want := Index(top, c.subBits)+1, Count(c.n, c.subBits); got != want {
			t.Errorf("Index(2^%d-1, %d)+1 = %d, Count = %d", c.n, c.subBits, got, want)
		}
	}
}

func TestIndex(t *testing.T) {
	for _, c := range []struct {
		v       uint64
		subBits int
		want    int
	}{
		{0, 2, 0},
		{7, 2, 7},          // below 2^3: exact
		{8, 2, 8},          // 8..9
		{9, 2, 8},          //
		{10, 2, 9},         // 10..11
		{16, 2, 12},        // 16..19
		{255, 7, 255},      // exact below 256
		{256, 7, 256},      // 256..257
		{1 << 20, 7, 1792}, // 256 exact, then 12 powers of two of 128 before 2^20
	} {
		if got := Index(c.v, c.subBits); got != c.want {
			t.Errorf("Index(%d, %d) = %d, want %d", c.v, c.subBits, got, c.want)
		}
	}
}
