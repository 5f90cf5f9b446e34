// Package taxcode checks the form of Italian tax codes: the partita IVA of a
// business and the codice fiscale of a person or a company.
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
	if len(s) != 11 || strings.Trim(s, "0") == "" {
		return false
	}
	sum := 0
	for i := 0; i < 11; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		n := int(c - '0')
		if i < 10 && i%2 == 1 {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		if i < 10 {
			sum += n
		}
	}
	return int(s[10]-'0') == (10-sum%10)%10
}

// cfMonths are the month letters of a codice fiscale, January first.
const cfMonths = "ABCDEHLMPRST"

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
	sum := 0
	for i := 0; i < 16; i++ {
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
		if i == 15 {
			break
		}
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
	d1, _ := digit(s[9])
	d2, _ := digit(s[10])
	day := d1*10 + d2
	if day > 40 {
		day -= 40
	}
	if day < 1 || day > 31 {
		return false
	}
	return s[15] == byte('A'+sum%26)
}
