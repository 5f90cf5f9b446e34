// Package logbucket owns the arithmetic of log-linear histogram buckets:
// which bucket a value falls in and which values a bucket holds, given
// subBits, the number of bits that split each power of two into 2^subBits
// buckets of equal width. Values below 2^(subBits+1) have a bucket each;
// above, a bucket's width is at most 2^-subBits of its lower bound, so a
// value read back as any point of its bucket is within that share of the
// value recorded.
//
// The router's status window (shardmap, 4 buckets per power of two) and the
// benchmark's open-loop histogram (bench, 128) count in these buckets; each
// keeps its own counts, units and quantile rule. The package is pure
// functions: no I/O and no imports of the module.
package logbucket

import "math/bits"

// Index returns the bucket of v: v itself below 2^(subBits+1), then
// 2^subBits buckets per power of two. Indexes grow with v; the largest,
// Index(math.MaxUint64, subBits), is Count(64, subBits)-1.
// subBits must be in 0..62.
func Index(v uint64, subBits int) int {
	shift := max(bits.Len64(v)-1-subBits, 0) // v>>shift is below 2^(subBits+1)
	return shift<<subBits + int(v>>shift)
}

// Lower returns the smallest value of bucket i.
func Lower(i, subBits int) uint64 {
	shift, m := split(i, subBits)
	return m << shift
}

// Upper returns the largest value of bucket i (the last bucket's is
// math.MaxUint64).
func Upper(i, subBits int) uint64 {
	shift, m := split(i, subBits)
	return (m+1)<<shift - 1
}

// Count returns the number of buckets that hold the values below 2^n,
// for n in subBits+1..64: a histogram of Count(n, subBits) buckets holds
// every value below 2^n.
func Count(n, subBits int) int {
	return (n + 1 - subBits) << subBits
}

// split returns bucket i's shift and the value m whose multiples of
// 2^shift start its values: Lower(i) = m<<shift.
func split(i, subBits int) (shift int, m uint64) {
	shift = max(i>>subBits-1, 0)
	return shift, uint64(i - shift<<subBits)
}
