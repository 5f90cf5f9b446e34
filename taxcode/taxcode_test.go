package taxcode

import "testing"

// validCase is an input of a validity check and the answer it must get.
type validCase struct {
	in   string
	want bool
}

// checkValid fails t for every case of tests that valid, named fn, judges
// otherwise.
func checkValid(t *testing.T, fn string, valid func(string) bool, tests []validCase) {
	t.Helper()
	for _, tt := range tests {
		if got := valid(tt.in); got != tt.want {
			t.Errorf("%s(%q) = %v, want %v", fn, tt.in, got, tt.want)
		}
	}
}

func TestValidPartitaIVA(t *testing.T) {
	checkValid(t, "ValidPartitaIVA", ValidPartitaIVA, []validCase{
		{"01234567897", true},
		{"12345678903", true},
		{"00743110157", true}, // a real company's, published on its invoices
		{"01234567890", false},
		{"12345678901", false},
		{"00000000000", false},
		{"1234567890", false},
		{"123456789012", false},
		{"0123456789A", false},
		{"0123456789 ", false},
		{"", false},
	})
}

func TestValidCodiceFiscale(t *testing.T) {
	checkValid(t, "ValidCodiceFiscale", ValidCodiceFiscale, []validCase{
		{"RSSMRA80A01H501U", true},  // Mario Rossi, born in Rome on 1 January 1980
		{"RSSMRA80A41H501Y", true},  // the same date for a woman: day + 40
		{"RSSMRA80A01H50MM", true},  // omocodia: the last digit of the place as a letter
		{"RSSMRA80A01H501X", false}, // wrong check letter
		{"RSSMRA80Z01H501U", false}, // Z is no month
		{"RSSMRA80A32H501U", false}, // day 32
		{"RSSMRA80A00H501U", false}, // day 0
		{"rssmra80a01h501u", false}, // lower case
		{"RSSMRA80A01H501", false},
		{"12345678903", true}, // a company's: its partita IVA
		{"12345678901", false},
		{"", false},
	})
}

func TestChecks(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want byte
		fn   func(string) byte
	}{
		{"0123456789", '7', PartitaIVACheck},
		{"1234567890", '3', PartitaIVACheck},
		{"0074311015", '7', PartitaIVACheck},
		{"RSSMRA80A01H501", 'U', CodiceFiscaleCheck},
		{"RSSMRA80A41H501", 'Y', CodiceFiscaleCheck},
		{"RSSMRA80A01H50M", 'M', CodiceFiscaleCheck},
	} {
		if got := tt.fn(tt.in); got != tt.want {
			t.Errorf("check of %q = %c, want %c", tt.in, got, tt.want)
		}
	}
	for m, want := range map[int]byte{1: 'A', 5: 'E', 6: 'H', 12: 'T'} {
		if got := MonthLetter(m); got != want {
			t.Errorf("MonthLetter(%d) = %c, want %c", m, got, want)
		}
	}
}
