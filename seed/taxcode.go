package seed

import (
	"strings"

	"github.com/dmshub/dmsrouter/taxcode"
)

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
	b[10] = taxcode.PartitaIVACheck(string(b[:10]))
	return string(b[:])
}

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
	b = append(b, byte('0'+y/10), byte('0'+y%10), taxcode.MonthLetter(p.month))
	d := p.day
	if p.female {
		d += 40
	}
	b = append(b, byte('0'+d/10), byte('0'+d%10))
	b = append(b, p.place...)
	b = append(b, taxcode.CodiceFiscaleCheck(string(b)))
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
