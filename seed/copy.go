package seed

import (
	"encoding/binary"
	"io"
	"time"
)

// The rows are written in PostgreSQL's binary COPY format: the server parses
// no text, and the generator appends fixed-width big-endian values to one
// reused buffer, so a row costs no allocation.

// pgEpoch is 2000-01-01 00:00 UTC, the origin of PostgreSQL's binary dates
// (days) and timestamps (microseconds).
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// day is a calendar date as days since 2000-01-01, the binary form of date.
type day int32

// dayOf returns the calendar day y-m-d.
func dayOf(y int, m time.Month, d int) day {
	return day(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Sub(pgEpoch) / (24 * time.Hour))
}

// time returns d at midnight UTC.
func (d day) time() time.Time { return pgEpoch.AddDate(0, 0, int(d)) }

// weekday returns d's ISO weekday, 1 (Monday) .. 7 (Sunday).
func (d day) weekday() int {
	// 2000-01-01 was a Saturday (6).
	w := (int(d)+5)%7 + 1
	if w <= 0 {
		w += 7
	}
	return w
}

// addYears returns d plus n calendar years; 29 February maps to 28
// February in a common year, as PostgreSQL's date + interval does.
func (d day) addYears(n int) day {
	y, m, dd := d.time().Date()
	if m == time.February && dd == 29 && dayOf(y+n, time.March, 1)-dayOf(y+n, time.February, 28) == 1 {
		dd = 28
	}
	return dayOf(y+n, m, dd)
}

// micros returns t as microseconds since pgEpoch, the binary form of timestamptz.
func micros(t time.Time) int64 { return t.Sub(pgEpoch).Microseconds() }

// encoder appends binary COPY data to buf.
type encoder struct {
	buf []byte
}

var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

func (e *encoder) header()  { e.buf = append(e.buf, copyHeader...) }
func (e *encoder) trailer() { e.buf = binary.BigEndian.AppendUint16(e.buf, 0xffff) }

// row starts a row of n fields.
func (e *encoder) row(n int) { e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(n)) }

func (e *encoder) null() { e.buf = binary.BigEndian.AppendUint32(e.buf, 0xffffffff) }

func (e *encoder) int2(v int16) {
	e.buf = binary.BigEndian.AppendUint32(e.buf, 2)
	e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(v))
}

func (e *encoder) int4(v int32) {
	e.buf = binary.BigEndian.AppendUint32(e.buf, 4)
	e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(v))
}

func (e *encoder) int8(v int64) {
	e.buf = binary.BigEndian.AppendUint32(e.buf, 8)
	e.buf = binary.BigEndian.AppendUint64(e.buf, uint64(v))
}

// int8OrNull writes v, or NULL when v is 0.
func (e *encoder) int8OrNull(v int64) {
	if v == 0 {
		e.null()
		return
	}
	e.int8(v)
}

func (e *encoder) text(s string) {
	e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(len(s)))
	e.buf = append(e.buf, s...)
}

func (e *encoder) date(d day) { e.int4(int32(d)) }

// dateOrNull writes d, or NULL when d is noDay.
func (e *encoder) dateOrNull(d day) {
	if d == noDay {
		e.null()
		return
	}
	e.date(d)
}

// textOrNull writes s, or NULL when s is empty.
func (e *encoder) textOrNull(s string) {
	if s == "" {
		e.null()
		return
	}
	e.text(s)
}

// textArray writes a one-dimensional text[] without nulls.
func (e *encoder) textArray(vs []string) {
	size := 12
	if len(vs) > 0 {
		size = 20
		for _, v := range vs {
			size += 4 + len(v)
		}
	}
	e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(size))
	if len(vs) == 0 {
		e.buf = binary.BigEndian.AppendUint32(e.buf, 0)  // ndim
		e.buf = binary.BigEndian.AppendUint32(e.buf, 0)  // has nulls
		e.buf = binary.BigEndian.AppendUint32(e.buf, 25) // text
		return
	}
	e.buf = binary.BigEndian.AppendUint32(e.buf, 1)  // ndim
	e.buf = binary.BigEndian.AppendUint32(e.buf, 0)  // has nulls
	e.buf = binary.BigEndian.AppendUint32(e.buf, 25) // text
	e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(len(vs)))
	e.buf = binary.BigEndian.AppendUint32(e.buf, 1) // lower bound
	for _, v := range vs {
		e.text(v)
	}
}

// timestamp writes a timestamptz given in microseconds since pgEpoch.
func (e *encoder) timestamp(us int64) { e.int8(us) }

// timestampOrNull writes us, or NULL when us is 0.
func (e *encoder) timestampOrNull(us int64) { e.int8OrNull(us) }

// numeric2 writes cents/100 as a numeric with two decimals (12.50 for
// 1250). cents must not be negative.
func (e *encoder) numeric2(cents int64) {
	// A binary numeric is ndigits, weight, sign, dscale and ndigits base-10000
	// digits, the first of which is worth 10000^weight.
	var digits [6]uint16
	n := 0
	intPart, frac := cents/100, cents%100
	weight := -1
	if intPart > 0 {
		var groups [5]uint16
		g := 0
		for v := intPart; v > 0; v /= 10000 {
			groups[g] = uint16(v % 10000)
			g++
		}
		for i := g - 1; i >= 0; i-- {
			digits[n] = groups[i]
			n++
		}
		weight = g - 1
	}
	if frac != 0 {
		digits[n] = uint16(frac * 100)
		n++
	}
	for n > 0 && digits[n-1] == 0 { // no trailing zero digits
		n--
	}
	if n == 0 {
		weight = 0
	}
	e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(8+2*n))
	e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(n))
	e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(int16(weight)))
	e.buf = binary.BigEndian.AppendUint16(e.buf, 0) // positive
	e.buf = binary.BigEndian.AppendUint16(e.buf, 2) // dscale
	for _, d := range digits[:n] {
		e.buf = binary.BigEndian.AppendUint16(e.buf, d)
	}
}

// int2Array writes a one-dimensional smallint[] without nulls.
func (e *encoder) int2Array(vs []int16) {
	if len(vs) == 0 {
		e.buf = binary.BigEndian.AppendUint32(e.buf, 12)
		e.buf = binary.BigEndian.AppendUint32(e.buf, 0)  // ndim
		e.buf = binary.BigEndian.AppendUint32(e.buf, 0)  // has nulls
		e.buf = binary.BigEndian.AppendUint32(e.buf, 21) // int2
		return
	}
	e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(20+6*len(vs)))
	e.buf = binary.BigEndian.AppendUint32(e.buf, 1)  // ndim
	e.buf = binary.BigEndian.AppendUint32(e.buf, 0)  // has nulls
	e.buf = binary.BigEndian.AppendUint32(e.buf, 21) // int2
	e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(len(vs)))
	e.buf = binary.BigEndian.AppendUint32(e.buf, 1) // lower bound
	for _, v := range vs {
		e.int2(v)
	}
}

// copyChunk is the size a copySource fills its buffer to before handing it over.
const copyChunk = 256 << 10

// copySource is the io.Reader a COPY reads: it calls fill to append rows to
// its buffer whenever the buffer runs dry, so rows are generated as the
// server consumes them and never held in memory as a whole.
type copySource struct {
	enc  encoder
	off  int
	fill func(e *encoder) (more bool, err error) // appends about copyChunk bytes of rows
	done bool
	rows func(n int64) // reports progress, may be nil
}

func newCopySource(fill func(e *encoder) (bool, error)) *copySource {
	s := &copySource{fill: fill}
	s.enc.buf = make([]byte, 0, copyChunk+64<<10)
	s.enc.header()
	return s
}

// Read implements io.Reader.
func (s *copySource) Read(p []byte) (int, error) {
	for s.off == len(s.enc.buf) {
		if s.done {
			return 0, io.EOF
		}
		s.enc.buf, s.off = s.enc.buf[:0], 0
		more, err := s.fill(&s.enc)
		if err != nil {
			return 0, err
		}
		if !more {
			s.enc.trailer()
			s.done = true
		}
	}
	n := copy(p, s.enc.buf[s.off:])
	s.off += n
	return n, nil
}
