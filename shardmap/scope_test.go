package shardmap

import (
	"fmt"
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
		checkParts(t, fmt.Sprintf("readScopeStatement(%+v, %v)", tc.sc, tc.generic), readScopeStatement(tc.sc, tc.generic), []part{
			{"the read fence", fenceReadSQL, tc.wantFence},
			{"the role switch", regionReaderSQL, tc.wantRole},
			{"generic plans", genericPlansSQL, tc.wantGeneric},
			{"read-only", readOnlySQL, true},
			{"the write fence", "dms.fence($1, true)", false},
		})
	}
	sc := regions.Scope{Region: "03", Comune: "015146"}
	if n := testing.AllocsPerRun(100, func() { readScopeStatement(sc, true) }); n != 0 {
		t.Errorf("readScopeStatement allocates %v times, want 0", n)
	}
}

// TestPrimaryScopeStatement checks the texts that open a transaction or a
// batch on the primary: the write's fence for a write and the read's for
// a read-only transaction, the frozen database's check always, the role
// RowWriter only when asked, and none of a read's settings; and that
// choosing one allocates nothing.
func TestPrimaryScopeStatement(t *testing.T) {
	for _, tc := range []struct {
		sc                                  regions.Scope
		forWrite, asWriter                  bool
		wantWriteFence, wantReadFence, role bool
	}{
		{regions.Scope{}, true, false, false, false, false},
		{regions.Scope{}, false, false, false, false, false},
		{regions.Scope{Region: "03"}, true, false, true, false, false},
		{regions.Scope{Region: "03", Comune: "015146"}, true, true, true, false, true},
		{regions.Scope{Region: "03", Market: 7}, false, false, false, true, false},
	} {
		name := fmt.Sprintf("primaryScopeStatement(%+v, %v, %v)", tc.sc, tc.forWrite, tc.asWriter)
		checkParts(t, name, primaryScopeStatement(tc.sc, tc.forWrite, tc.asWriter), []part{
			{"the write fence", fenceWriteSQL, tc.wantWriteFence},
			{"the read fence", fenceReadSQL, tc.wantReadFence},
			{"the role RowWriter", rowWriterSQL, tc.role},
			{"the frozen database's check", frozenDatabaseSQL, true},
			{"read-only", readOnlySQL, false},
			{"the role switch of reads", regionReaderSQL, false},
			{"generic plans", genericPlansSQL, false},
		})
	}
	sc := regions.Scope{Region: "03", Comune: "015146"}
	if n := testing.AllocsPerRun(100, func() { primaryScopeStatement(sc, true, true) }); n != 0 {
		t.Errorf("primaryScopeStatement allocates %v times, want 0", n)
	}
}

// part is a piece of SQL a scope statement must hold (want) or not.
type part struct {
	name, sql string
	want      bool
}

// checkParts checks that text, the statement named name, holds the parts
// it should and none it should not, and sets the scope.
func checkParts(t *testing.T, name, text string, parts []part) {
	t.Helper()
	for _, p := range parts {
		if got := strings.Contains(text, p.sql); got != p.want {
			t.Errorf("%s has %s: %v, want %v\n%s", name, p.name, got, p.want, text)
		}
	}
	if !strings.Contains(text, "set_config('dms.user', $5, true)") {
		t.Errorf("%s sets no scope:\n%s", name, text)
	}
}
