package registry

import (
	"encoding/base64"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeCursor feeds the cursor decoder arbitrary strings: it must
// refuse them with ErrBadCursor or return a cursor of the list asked for,
// with a positive id and text PostgreSQL can store, that encodes back to a
// cursor decoding to the same position.
func FuzzDecodeCursor(f *testing.F) {
	for _, seed := range []struct{ list, s string }{
		{"markets", cursor{List: "markets", Text: "Mercato di Via Papiniano", ID: 844424930131969}.encode()},
		{"stalls", cursor{List: "stalls", Num: 7, ID: 5}.encode()},
		{"markets", cursor{List: "stalls", ID: 5}.encode()},
		{"markets", "notacursor"},
		{"markets", ""},
		{"markets", base64.RawURLEncoding.EncodeToString([]byte(`{"l":"markets","t":"\u0000","i":5}`))},
		{"markets", base64.RawURLEncoding.EncodeToString([]byte("{\"l\":\"markets\",\"t\":\"\xff\",\"i\":5}"))},
		{"markets", base64.RawURLEncoding.EncodeToString([]byte(`{"l":"markets","i":-1}`))},
		{"markets", base64.RawURLEncoding.EncodeToString([]byte(`{"l":"markets","i":1e30}`))},
		{nationalMarketsList, cursor{List: nationalMarketsList, Text: "Z", ID: 9}.encode()},
		{expiringList, cursor{List: expiringList, Text: "2026-07-31", ID: 2}.encode()},
	} {
		f.Add(seed.list, seed.s)
	}
	f.Fuzz(func(t *testing.T, list, s string) {
		c, err := decodeCursor(list, s)
		if err != nil {
			if err != ErrBadCursor {
				t.Fatalf("decodeCursor(%q, %q) error = %v, want ErrBadCursor", list, s, err)
			}
			return
		}
		if c.List != list || c.ID <= 0 || strings.IndexByte(c.Text, 0) >= 0 || !utf8.ValidString(c.Text) {
			t.Fatalf("decodeCursor(%q, %q) = %+v", list, s, c)
		}
		again, err := decodeCursor(list, c.encode())
		if err != nil || again != c {
			t.Fatalf("decodeCursor(encode(%+v)) = %+v, %v", c, again, err)
		}
	})
}
