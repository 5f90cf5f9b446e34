package seed

import "time"

// SetRebuildMarketDays sets the size from which a shard's presence load
// rebuilds the indexes, so that tiny tests exercise both paths, and returns
// a function that restores it.
func SetRebuildMarketDays(n int64) (restore func()) {
	old := rebuildMarketDays
	rebuildMarketDays = n
	return func() { rebuildMarketDays = old }
}

// EncodeSample returns a binary COPY stream of the rows of the encoder
// test, for a table (n numeric(8,2), a smallint[], d date, t timestamptz,
// s text, i bigint).
func EncodeSample() []byte {
	var e encoder
	e.header()
	for _, r := range []struct {
		cents int64
		days  []int16
		d     day
		us    int64
		s     string
		i     int64
	}{
		{1250, []int16{1, 3}, dayOf(2026, 5, 4), micros(time.Date(2026, 5, 4, 6, 30, 0, 0, time.UTC)), "Forlì", 1<<48 | 1},
		{5, nil, dayOf(1999, 12, 31), 0, "", 0},
		{0, []int16{7}, 0, 1, "x", -1},
		{12345678, []int16{1, 2, 3, 4, 5, 6}, dayOf(2000, 2, 29), -1, "CONCESSION", 1},
		{99999999, []int16{2}, dayOf(2030, 1, 1), 0, "a", 0},
		{1000000, []int16{2}, dayOf(2030, 1, 1), 0, "b", 0},
	} {
		e.row(6)
		e.numeric2(r.cents)
		e.int2Array(r.days)
		e.date(r.d)
		e.timestampOrNull(r.us)
		e.text(r.s)
		e.int8OrNull(r.i)
	}
	e.trailer()
	return e.buf
}
