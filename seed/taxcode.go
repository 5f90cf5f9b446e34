package seed

import (
	"strings"

	"github.com/dmshub/dmsrouter/taxcode"
)

// ValidPartitaIVA reports whether s is a well-formed partita IVA, as
// taxcode.ValidPartitaIVA does: the seed's vendors all pass it.
func ValidPartitaIVA(s string) bool { return taxcode.ValidPartitaIVA(s) }

// partitaIVACheck returns the check digit of the ten ASCII digits d.
func partitaIVACheck(d string) int {
	sum := 0
	for i := 0; i < 10; i++ {
		n := int(d[i] - '0')
		if i%2 == 1 {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
	}
	return (10 - sum%10) % 10
}

// makePartitaIVA returns the partita IVA of registration number matricola
// (0..9,999,999) at tax office office (1..999): seven digits, three digits,
// check digit.
func makePartitaIVA(matricola, office int) string {
	var b [11]byte
	for i, n := 6, matricola; i >= 0; i, n = i-1, n/10 {
		b[i] = byte('0' + n%10)
	}
	for i, n := 9, office; i >= 7; i, n = i-1, n/10 {
		b[i] = byte('0' + n%10)
	}
	b[10] = byte('0' + partitaIVACheck(string(b[:10])))
	return string(b[:])
}

// cfMonths are the letters of the months in a codice fiscale, January first.
const cfMonths = "ABCDEHLMPRST"

// cfOdd is the value of each character in an odd (1st, 3rd, ...) position,
// digits and letters alike: '0' and 'A' are 1, '1' and 'B' are 0, and so on.
var cfOdd = [36]int{
	1, 0, 5, 7, 9, 13, 15, 17, 19, 21, // 0-9
	1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23, // A-Z
}

// cfCheck returns the check character of the first 15 characters of a
// codice fiscale, which must be ASCII digits or upper-case letters.
func cfCheck(s string) byte {
	sum := 0
	for i := 0; i < 15; i++ {
		c := s[i]
		var idx, even int
		if c >= '0' && c <= '9' {
			idx, even = int(c-'0'), int(c-'0')
		} else {
			idx, even = 10+int(c-'A'), int(c-'A')
		}
		if i%2 == 0 { // 1st, 3rd, ... character
			sum += cfOdd[idx]
		} else {
			sum += even
		}
	}
	return byte('A' + sum%26)
}

// ValidCodiceFiscale reports whether s is a well-formed codice fiscale of
// a person (16 characters) or a company (11 digits), as
// taxcode.ValidCodiceFiscale does: the seed's vendors all pass it.
func ValidCodiceFiscale(s string) bool { return taxcode.ValidCodiceFiscale(s) }

// person is what a person's codice fiscale is computed from.
type person struct {
	surname, name string
	female        bool
	year          int    // four digits
	month, day    int    // 1-based
	place         string // the Belfiore code of the place of birth, e.g. "F205"
}

// codiceFiscale returns p's 16-character codice fiscale.
func (p person) codiceFiscale() string {
	b := make([]byte, 0, 16)
	b = append(b, surnameCode(p.surname)...)
	b = append(b, nameCode(p.name)...)
	y := p.year % 100
	b = append(b, byte('0'+y/10), byte('0'+y%10), cfMonths[p.month-1])
	d := p.day
	if p.female {
		d += 40
	}
	b = append(b, byte('0'+d/10), byte('0'+d%10))
	b = append(b, p.place...)
	b = append(b, cfCheck(string(b)))
	return string(b)
}

// letters splits the letters of s, upper-cased, into consonants and vowels;
// anything but ASCII letters (spaces, apostrophes) is dropped.
func letters(s string) (cons, vows []byte) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c < 'A' || c > 'Z' {
			continue
		}
		if strings.IndexByte("AEIOU", c) >= 0 {
			vows = append(vows, c)
		} else {
			cons = append(cons, c)
		}
	}
	return cons, vows
}

// surnameCode is the first three consonants of s, then its vowels, padded with X.
func surnameCode(s string) string {
	cons, vows := letters(s)
	return pad3(append(cons, vows...))
}

// nameCode is the 1st, 3rd and 4th consonant of s when it has four or more,
// otherwise like surnameCode.
func nameCode(s string) string {
	cons, vows := letters(s)
	if len(cons) >= 4 {
		return string([]byte{cons[0], cons[2], cons[3]})
	}
	return pad3(append(cons, vows...))
}

func pad3(b []byte) string {
	for len(b) < 3 {
		b = append(b, 'X')
	}
	return string(b[:3])
}
