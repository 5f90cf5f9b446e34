package router

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/dmshub/dmsrouter/registry"
)

// appendList appends the JSON of v, byte for byte what jsonEncode writes
// (encoding/json without HTML escaping, then a newline), when v is a page of
// one of the four lists that most reads answer, and reports whether it did.
// encoding/json finds each field by reflection on every call, which cost
// 9-11 us of the 0.11 ms of router CPU per read (BENCHMARKS.md, issue 14
// item 4); these appenders write the same fields in the same order.
// TestListJSON fills every exported field of the row types by reflection
// and compares with encoding/json, so a field added to a row type and not
// here fails the test. A value encoding/json would refuse or write its own
// way (a NaN, a year beyond 9999) makes appendList report false, and the
// caller encodes v with encoding/json instead.
func appendList(b []byte, v any) ([]byte, bool) {
	switch l := v.(type) {
	case registry.List[registry.Market]:
		return appendPage(b, l, appendMarket)
	case registry.List[registry.Stall]:
		return appendPage(b, l, appendStall)
	case registry.List[registry.Presence]:
		return appendPage(b, l, appendPresence)
	case registry.List[registry.Concession]:
		return appendPage(b, l, appendConcession)
	}
	return b, false
}

// appendPage appends page l with item appending each item.
func appendPage[T any](b []byte, l registry.List[T], item func([]byte, *T) ([]byte, bool)) ([]byte, bool) {
	b = append(b, `{"items":`...)
	if l.Items == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range l.Items {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = item(b, &l.Items[i]); !ok {
				return b, false
			}
		}
		b = append(b, ']')
	}
	b = appendInt(append(b, `,"limit":`...), int64(l.Limit))
	b = appendInt(append(b, `,"offset":`...), int64(l.Offset))
	b = appendInt(append(b, `,"total":`...), l.Total)
	b = strconv.AppendBool(append(b, `,"total_estimated":`...), l.TotalEstimated)
	if l.NextCursor != "" {
		b = appendString(append(b, `,"next_cursor":`...), l.NextCursor)
	}
	return append(b, "}\n"...), true
}

func appendMarket(b []byte, m *registry.Market) ([]byte, bool) {
	b = appendInt(append(b, `{"id":`...), m.ID)
	b = appendString(append(b, `,"region":`...), m.Region)
	b = appendString(append(b, `,"code":`...), m.Code)
	b = appendString(append(b, `,"name":`...), m.Name)
	b = appendString(append(b, `,"province":`...), m.Province)
	b = appendString(append(b, `,"comune":`...), m.Comune)
	b = appendString(append(b, `,"comune_name":`...), m.ComuneName)
	b = append(b, `,"days":`...)
	if m.Days == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, d := range m.Days {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendInt(b, int64(d))
		}
		b = append(b, ']')
	}
	b = appendString(append(b, `,"status":`...), m.Status)
	b, ok := appendFloat(append(b, `,"cost_per_sqm":`...), m.CostPerSqm)
	return append(b, '}'), ok
}

func appendStall(b []byte, s *registry.Stall) ([]byte, bool) {
	b = appendInt(append(b, `{"id":`...), s.ID)
	b = appendString(append(b, `,"region":`...), s.Region)
	b = appendInt(append(b, `,"market_id":`...), s.MarketID)
	b = appendInt(append(b, `,"number":`...), int64(s.Number))
	b = appendString(append(b, `,"type":`...), s.Type)
	b = appendString(append(b, `,"status":`...), s.Status)
	b, ok1 := appendFloat(append(b, `,"area_mq":`...), s.AreaMq)
	b, ok2 := appendFloatPtr(append(b, `,"width_m":`...), s.WidthM)
	b, ok3 := appendFloatPtr(append(b, `,"depth_m":`...), s.DepthM)
	b = appendString(append(b, `,"sector":`...), s.Sector)
	b = appendStringPtr(append(b, `,"reserved_for":`...), s.ReservedFor)
	return append(b, '}'), ok1 && ok2 && ok3
}

func appendPresence(b []byte, p *registry.Presence) ([]byte, bool) {
	b = appendInt(append(b, `{"id":`...), p.ID)
	b = appendString(append(b, `,"region":`...), p.Region)
	b = appendInt(append(b, `,"market_id":`...), p.MarketID)
	b = appendInt(append(b, `,"vendor_id":`...), p.VendorID)
	b = appendIntPtr(append(b, `,"stall_id":`...), p.StallID)
	b = appendString(append(b, `,"date":`...), p.Date)
	b = appendString(append(b, `,"kind":`...), p.Kind)
	b, ok1 := appendTime(append(b, `,"checkin_at":`...), p.CheckinAt)
	ok2 := true
	if b = append(b, `,"checkout_at":`...); p.CheckoutAt == nil {
		b = append(b, "null"...)
	} else {
		b, ok2 = appendTime(b, *p.CheckoutAt)
	}
	b = appendStringPtr(append(b, `,"outcome":`...), p.Outcome)
	return append(b, '}'), ok1 && ok2
}

func appendConcession(b []byte, c *registry.Concession) ([]byte, bool) {
	b = appendInt(append(b, `{"id":`...), c.ID)
	b = appendString(append(b, `,"region":`...), c.Region)
	b = appendInt(append(b, `,"market_id":`...), c.MarketID)
	b = appendInt(append(b, `,"stall_id":`...), c.StallID)
	b = appendInt(append(b, `,"vendor_id":`...), c.VendorID)
	b = appendString(append(b, `,"valid_from":`...), c.ValidFrom)
	b = appendString(append(b, `,"valid_to":`...), c.ValidTo)
	b = appendString(append(b, `,"status":`...), c.Status)
	b = appendString(append(b, `,"sector":`...), c.Sector)
	b = appendInt(append(b, `,"title_id":`...), c.TitleID)
	b = appendIntPtr(append(b, `,"follows_id":`...), c.FollowsID)
	b = appendStringPtr(append(b, `,"follows_by":`...), c.FollowsBy)
	b = appendStringPtr(append(b, `,"extended_to":`...), c.ExtendedTo)
	b = appendString(append(b, `,"effective_to":`...), c.EffectiveTo)
	b = appendStringPtr(append(b, `,"decadenza_proposed_on":`...), c.DecadenzaProposedOn)
	if b = append(b, `,"decadenza_absences":`...); c.DecadenzaAbsences == nil {
		b = append(b, "null"...)
	} else {
		b = appendInt(b, int64(*c.DecadenzaAbsences))
	}
	return append(b, '}'), true
}

func appendInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

func appendIntPtr(b []byte, n *int64) []byte {
	if n == nil {
		return append(b, "null"...)
	}
	return appendInt(b, *n)
}

func appendStringPtr(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendString(b, *s)
}

func appendFloatPtr(b []byte, f *float64) ([]byte, bool) {
	if f == nil {
		return append(b, "null"...), true
	}
	return appendFloat(b, *f)
}

// appendFloat appends f as encoding/json writes a float64: the shortest
// decimal that reads back as f, in exponent form below 1e-6 and from 1e21
// on, with a one-digit negative exponent written without its zero. It
// reports false for a NaN or an infinity, which encoding/json refuses.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b, true
}

// appendTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, quoted). It reports false for a year outside 0-9999 or a
// zone offset of a day or more, which MarshalJSON refuses.
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := t.Zone(); off <= -24*60*60 || off >= 24*60*60 {
		return b, false
	}
	b = t.AppendFormat(append(b, '"'), time.RFC3339Nano)
	return append(b, '"'), true
}

const hexDigits = "0123456789abcdef"

// appendString appends s quoted as encoding/json does without HTML
// escaping: the short escapes for quote, backslash, \b, \f, \n, \r and \t,
// \u00XX for the other control characters, U+FFFD for each byte of
// invalid UTF-8, and \u2028 and \u2029, which JavaScript reads as line ends.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(append(b, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
