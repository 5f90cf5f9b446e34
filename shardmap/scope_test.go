package shardmap

import (
	"strings"
	"testing"

	"github.com/dmshub/dmsrouter/regions"
)

// TestReadScopeStatement checks the texts a read opens with: the fence for
// a scope that names a region, the role switch for a whole region, generic
// plans when asked; and that choosing one allocates nothing, since every
// read does it.
func TestReadScopeStatement(t *testing.T) {
	for _, tc := range []struct {
		sc                               regions.Scope
		generic                          bool
		wantFence, wantRole, wantGeneric bool
	}{
		{regions.Scope{}, false, false, true, false},
		{regions.Scope{Region: "03"}, false, true, true, false},
		{regions.Scope{Region: "03"}, true, true, true, true},
		{regions.Scope{Region: "03", Comune: "015146"}, false, true, false, false},
		{regions.Scope{Region: "03", Province: "015"}, true, true, false, true},
		{regions.Scope{Region: "03", Market: 7}, false, true, false, false},
	} {
		text := readScopeStatement(tc.sc, tc.generic)
		for _, part := range []struct {
			name, sql string
			want      bool
		}{
			{"the read fence", fenceReadSQL, tc.wantFence},
			{"the role switch", regionReaderSQL, tc.wantRole},
			{"generic plans", genericPlansSQL, tc.wantGeneric},
			{"read-only", readOnlySQL, true},
			{"the write fence", "dms.fence($1, true)", false},
		} {
			if got := strings.Contains(text, part.sql); got != part.want {
				t.Errorf("readScopeStatement(%+v, %v) has %s: %v, want %v\n%s", tc.sc, tc.generic, part.name, got, part.want, text)
			}
		}
		if !strings.Contains(text, "set_config('dms.user', $5, true)") {
			t.Errorf("readScopeStatement(%+v, %v) sets no scope:\n%s", tc.sc, tc.generic, text)
		}
	}
	sc := regions.Scope{Region: "03", Comune: "015146"}
	if n := testing.AllocsPerRun(100, func() { readScopeStatement(sc, true) }); n != 0 {
		t.Errorf("readScopeStatement allocates %v times, want 0", n)
	}
}
