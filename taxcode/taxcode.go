// Package taxcode checks the form of Italian tax codes: the partita IVA of a
// business and the codice fiscale of a person or a company, and computes
// their check characters. It imports nothing of the module.
package taxcode

import "strings"

// ValidPartitaIVA reports whether s is a well-formed partita IVA: exactly 11
// ASCII digits, not all zero, whose last digit is the check digit of the
// first ten (the Agenzia delle Entrate's Luhn variant: digits in odd
// positions are summed as they are, digits in even positions are doubled,
// less 9 when above 9, and summed; the check digit brings the total to a
// multiple of 10). The 11-digit codice fiscale of a company follows the same
// rule.
func ValidPartitaIVA(s string) bool {
	if len(s) != 11 || strings.Trim(s, "0") == "" || !allDigits(s) {
		return false
	}
	return s[10] == PartitaIVACheck(s[:10])
}

// PartitaIVACheck returns the check digit, as an ASCII digit, of the ten
// ASCII digits d (the first ten of a partita IVA), by the rule
// ValidPartitaIVA describes. It panics when d is shorter than ten bytes.
func PartitaIVACheck(d string) byte {
	sum := 0
	for i := range 10 {
		n := int(d[i] - '0')
		if i%2 == 1 {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
	}
	return byte('0' + (10-sum%10)%10)
}

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// cfMonths are the month letters of a codice fiscale, January first.
const cfMonths = "ABCDEHLMPRST"

// MonthLetter returns the letter that stands for month m (1 to 12) in a
// codice fiscale. It panics when m is out of range.
func MonthLetter(m int) byte { return cfMonths[m-1] }

// cfOmocodia are the letters that stand for the digits 0..9 in the numeric
// positions of a codice fiscale when two people would otherwise share one.
const cfOmocodia = "LMNPQRSTUV"

// cfOdd is the value of each character in an odd (1st, 3rd, ...) position:
// digits 0-9 first, then letters A-Z.
var cfOdd = [36]int{
	1, 0, 5, 7, 9, 13, 15, 17, 19, 21,
	1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
}

// ValidCodiceFiscale reports whether s is a well-formed codice fiscale:
// either 11 digits (a company's, valid as ValidPartitaIVA says) or the 16
// upper-case characters of a person: six letters of surname and name, two
// year digits, a month letter (A B C D E H L M P R S T), two day digits
// (01..31, or 41..71 for women), a letter and three digits of the place of
// birth, and the check letter. The digits may be replaced by the omocodia
// letters L..V. It does not check that the place of birth exists.
func ValidCodiceFiscale(s string) bool {
	switch len(s) {
	case 11:
		return ValidPartitaIVA(s)
	case 16:
	default:
		return false
	}
	digit := func(c byte) (int, bool) {
		if c >= '0' && c <= '9' {
			return int(c - '0'), true
		}
		if i := strings.IndexByte(cfOmocodia, c); i >= 0 {
			return i, true
		}
		return 0, false
	}
	for i := range 16 {
		c := s[i]
		switch i {
		case 0, 1, 2, 3, 4, 5, 11, 15:
			if c < 'A' || c > 'Z' {
				return false
			}
		case 8:
			if strings.IndexByte(cfMonths, c) < 0 {
				return false
			}
		default: // 6, 7, 9, 10, 12, 13, 14
			if _, ok := digit(c); !ok {
				return false
			}
		}
	}
	d1, _ := digit(s[9])
	d2, _ := digit(s[10])
	day := d1*10 + d2
	if day > 40 {
		day -= 40
	}
	if day < 1 || day > 31 {
		return false
	}
	return s[15] == CodiceFiscaleCheck(s[:15])
}

// CodiceFiscaleCheck returns the check letter of the first 15 characters of
// a person's codice fiscale, which must be ASCII digits or upper-case
// letters: characters in odd positions (1st, 3rd, ...) count by the table
// cfOdd, the others by their place among the digits or the letters, and the
// sum modulo 26 is the letter. It panics when s is shorter than 15 bytes.
func CodiceFiscaleCheck(s string) byte {
	sum := 0
	for i := range 15 {
		c := s[i]
		var idx, even int
		if c >= '0' && c <= '9' {
			idx, even = int(c-'0'), int(c-'0')
		} else {
			idx, even = 10+int(c-'A'), int(c-'A')
		}
		if i%2 == 0 {
			sum += cfOdd[idx]
		} else {
			sum += even
		}
	}
	return byte('A' + sum%26)
}
