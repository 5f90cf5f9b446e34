package regions

import (
	"fmt"
	"strconv"
)

// IDShift is the bit position of the region number in an id: an id is
// region<<IDShift | seq. With 20 regions every id stays below 2^53, so it
// survives a round trip through a JSON number.
const IDShift = 48

// IDSQL returns an SQL expression of the id of sequence number seq in
// region region (both SQL expressions), the layout of MakeID:
// (region::bigint << IDShift) | seq. dms.next_id computes the same.
func IDSQL(region, seq string) string {
	return "((" + region + ")::bigint << " + strconv.Itoa(IDShift) + ") | (" + seq + ")"
}

// MaxSeq is the largest sequence number an id can carry, 2^48-1.
const MaxSeq = 1<<IDShift - 1

// MakeID returns the id of sequence number seq in region r,
// r.Num()<<IDShift | seq. seq must be in 1..MaxSeq and r a known region; for
// any other input MakeID returns 0, which is never a valid id, rather than an
// id that names the wrong region.
func MakeID(r Code, seq int64) int64 {
	n := r.Num()
	if n == 0 || seq < 1 || seq > MaxSeq {
		return 0
	}
	return int64(n)<<IDShift | seq
}

// IDRegion returns the region an id carries. It returns an error wrapping
// ErrBadID when id is not positive, its sequence part is 0 or its region bits
// name no region.
func IDRegion(id int64) (Code, error) {
	if id <= 0 {
		return "", fmt.Errorf("%w: %d is not positive", ErrBadID, id)
	}
	if id&MaxSeq == 0 {
		return "", fmt.Errorf("%w: %d has sequence 0", ErrBadID, id)
	}
	r, err := CodeOf(int(id >> IDShift))
	if err != nil {
		return "", fmt.Errorf("%w: %d carries region %d", ErrBadID, id, id>>IDShift)
	}
	return r, nil
}

// ParseID parses s as an id and returns it with its region. s must be the
// canonical decimal form of the id: ASCII digits only, no sign, no spaces and
// no leading zero. Anything else, a value that overflows int64, or an id that
// IDRegion rejects gives an error wrapping ErrBadID.
func ParseID(s string) (int64, Code, error) {
	if s == "" || !allDigits(s) || s[0] == '0' {
		return 0, "", fmt.Errorf("%w: %q", ErrBadID, s)
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("%w: %q out of range", ErrBadID, s)
	}
	r, err := IDRegion(id)
	if err != nil {
		return 0, "", err
	}
	return id, r, nil
}
