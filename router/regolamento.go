package router

import (
	"errors"
	"regexp"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
)

// The values of a market's regolamento (registry.Regolamento).
var (
	rankingResets = []string{"NEVER", "YEARLY"}
	tieBreaks     = []string{"REGISTRATION", "FIRST_PRESENCE", "DRAW"}
)

// The sectors (settori merceologici) of stalls, concessions and
// authorisations, and the categories a stall may be reserved for.
var (
	sectors    = []string{"ALIMENTARE", "NON_ALIMENTARE"}
	categories = []string{"PRODUTTORE", "DISABILE"}
)

var (
	checkSector       = oneOf(sectors...)
	checkCategory     = oneOf(categories...)
	checkRankingReset = oneOf(rankingResets...)
)

// errRegolamentoScope is a change of a regolamento by a principal that is
// not a regional, provincial or comune office.
var errRegolamentoScope = errors.New("only a regional, provincial or comune office may change a market's regolamento")

type regolamentoPatchBody struct {
	RankingReset opt[string]   `json:"ranking_reset"`
	RankingFrom  opt[string]   `json:"ranking_from"`
	TieBreaks    opt[[]string] `json:"tie_breaks"`
	Sectors      opt[bool]     `json:"sectors"`
	CallTime     opt[string]   `json:"call_time"`
	AbsenceLimit opt[int32]    `json:"absence_limit"`
}

// updateRegolamento is PATCH /v1/markets/{id}/regolamento: the values the
// body sets, the others as they apply (the market's own or the national
// defaults); ranking_from and absence_limit may be null (no one-off reset;
// the national limit). The regolamento is a comune's act, which regional
// law may shape: a regional, provincial or comune office changes it; a
// national or market principal is forbidden. It answers the regolamento
// as it now applies.
func (s *Server) updateRegolamento(c *gin.Context) error {
	return write(s, c, toPathID, readJSON, checkRegolamentoPatch, registry.UpdateRegolamento)
}

func checkRegolamentoPatch(k *checks, req writeReq, b *regolamentoPatchBody) (registry.RegolamentoPatch, regions.Code, error) {
	from := nullableField(k, "ranking_from", b.RankingFrom, checkRankingFrom)
	p := registry.RegolamentoPatch{
		RankingReset: patchField(k, "ranking_reset", b.RankingReset, checkRankingReset),
		RankingFrom:  registry.Field[*time.Time]{Set: from.Set, V: dayPtr(from.V)},
		TieBreaks:    patchField(k, "tie_breaks", b.TieBreaks, checkTieBreaks),
		Sectors:      patchField(k, "sectors", b.Sectors, nil),
		CallTime:     patchField(k, "call_time", b.CallTime, checkCallTime),
		AbsenceLimit: nullableField(k, "absence_limit", b.AbsenceLimit, checkAbsenceLimit),
	}
	k.someChange(p.RankingReset.Set, p.RankingFrom.Set, p.TieBreaks.Set, p.Sectors.Set, p.CallTime.Set, p.AbsenceLimit.Set)
	if l := req.p.Territory.Level; l == regions.National || l == regions.Market {
		k.refuse(errRegolamentoScope)
	}
	return p, req.region, nil
}

// checkRankingFrom validates the day of a one-off reset of the ranking.
func checkRankingFrom(s string) string {
	return checkDateBetween(s, "2000-01-01", "2100-12-31")
}

// checkDateBetween validates a day YYYY-MM-DD from first to last.
func checkDateBetween(s, first, last string) string {
	if msg := checkDate(s); msg != "" {
		return msg
	}
	if s < first || s > last {
		return "want a date from " + first + " to " + last
	}
	return ""
}

// checkTieBreaks validates the tie-breaks of a ranking: distinct, of
// tieBreaks, and ending with the draw, which always decides.
func checkTieBreaks(tb []string) string {
	for i, t := range tb {
		if !slices.Contains(tieBreaks, t) || slices.Index(tb, t) != i {
			return "want distinct tie-breaks of REGISTRATION, FIRST_PRESENCE, DRAW"
		}
	}
	if len(tb) == 0 || tb[len(tb)-1] != "DRAW" || slices.Index(tb, "DRAW") != len(tb)-1 {
		return "want the tie-breaks ending with DRAW, which always decides"
	}
	return ""
}

var callTimePattern = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

// checkCallTime validates the time of the call (appello), HH:MM.
func checkCallTime(s string) string {
	if !callTimePattern.MatchString(s) {
		return "want a time HH:MM, such as 08:00"
	}
	return ""
}

// checkAbsenceLimit validates a limit of unjustified absences in a year.
func checkAbsenceLimit(n int32) string {
	if n < 0 || n > 366 {
		return "want a number of days from 0 to 366, or null for the national rule"
	}
	return ""
}

// checkCategories validates a vendor's categories: distinct, of categories.
func checkCategories(cs []string) string {
	for i, c := range cs {
		if checkCategory(c) != "" || slices.Index(cs, c) != i {
			return "want distinct categories of PRODUTTORE, DISABILE"
		}
	}
	return ""
}
