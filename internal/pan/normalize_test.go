package pan

import (
	"strings"
	"testing"
)

func TestContainsNormalized(t *testing.T) {
	fullwidth := func(s string) string {
		var b strings.Builder
		for _, r := range s {
			if r >= '0' && r <= '9' {
				r += '０' - '0'
			}
			b.WriteRune(r)
		}
		return b.String()
	}
	for _, tc := range []struct {
		in   string
		want bool
	}{
		// What the issue lists.
		{"4111.1111.1111.1111", true},
		{"4111/1111/1111/1111", true},
		{"4111_1111_1111_1111", true},
		{"4111  1111  1111  1111", true},
		{"4111 - 1111 - 1111 - 1111", true},
		{fullwidth(visa), true},
		{"card " + fullwidth("4111 1111 1111 1111") + " thanks", true},
		// Every joiner, any number of them, mixed.
		{"4111....1111////1111____1111", true},
		{"4111     1111 1111 1111", true},
		{"5555–5555—5555‒4444", true},                      // en, em and figure dashes
		{"5555\u00a05555\u20095555\u30004444", true},       // no-break, thin and ideographic spaces
		{"4111\u200b1111\u200b1111\u200b1111", true},       // zero-width space
		{"4111\u20621111\u20631111\u20641111", true},       // invisible operators
		{"4\u03321\u03321\u03321\u0332111111111111", true}, // combining low lines
		{"3782·822463·10005", true},
		{"4111−1111−1111−1111", true}, // minus sign
		{"４１１１．１１１１．１１１１．１１１１", true},
		{"٤١١١١١١١١١١١١١١١", true}, // Arabic-Indic digits
		{"४१११ ११११", false},       // Devanagari, too short
		{"४१११ ११११ ११११ ११११", true},
		{"𝟒𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏", true}, // mathematical bold digits
		{"ref " + mc + " end", true},
		{amex, true},
		// A card number among other groups of its chain.
		{"4111 1111 1111 1111 12/29", true},
		{"exp 12/29 4111.1111.1111.1111", true},
		{"4111.1111.1111.1111.0", true},
		// Not card numbers.
		{"", false},
		{"order 1234", false},
		{"4111.1111.1111.1112", false},
		{"4111x1111x1111x1111", false},
		{"4111,1111,1111,1111", false}, // a comma ends a chain
		{"41111111111111110", false},   // 17 digits, Luhn-invalid, never cut
		{"call +44 20 7946 0958 now", false},
		{"invoice 2024/12/06, 3 items", false},
		{"１２３", false},
		{"４１１１ａ１１１１ｂ１１１１ｃ１１１１", false},
	} {
		if got := ContainsNormalized(tc.in); got != tc.want {
			t.Errorf("ContainsNormalized(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestDigitValue(t *testing.T) {
	for _, zero := range []rune{'0', '٠', '۰', '०', '০', '๐', '０', '𝟎', '𝟘', '𝟶'} {
		for v := range rune(10) {
			if got := digitValue(zero + v); rune(got) != v {
				t.Errorf("digitValue(%q) = %d, want %d", zero+v, got, v)
			}
		}
	}
}

func BenchmarkContainsNormalizedASCII(b *testing.B) {
	s := "order 2024-000123-4567 for Mr Smith, delivery next week"
	for b.Loop() {
		ContainsNormalized(s)
	}
}

func BenchmarkContainsNormalizedUnicode(b *testing.B) {
	s := "commande n° ２０２４-０００１２３ pour M. Dupont — livraison à l’adresse habituelle"
	for b.Loop() {
		ContainsNormalized(s)
	}
}

// joinersForFuzz are written between the digits of a planted card.
var joinersForFuzz = []string{"", " ", ".", "/", "_", "-", "  ", " - ", "–", "\u200b", "\u3000", "．", "／"}

// FuzzContainsNormalized: it never panics, finds whatever Contains finds,
// and finds a test card planted anywhere in the text, its digits split by
// any mix of joiners, plain or fullwidth, when non-digits stand around it.
func FuzzContainsNormalized(f *testing.F) {
	for _, s := range []string{"", "x", "4111 1111", "１２３", "٤", "a.b/c_d", "\u0332\u200b"} {
		f.Add(s, uint(0), []byte{1, 2, 3}, false)
	}
	f.Fuzz(func(t *testing.T, s string, at uint, seps []byte, wide bool) {
		if Contains(s) && !ContainsNormalized(s) {
			t.Fatalf("Contains(%q) but not ContainsNormalized", s)
		}
		var card strings.Builder
		for i, d := range visa {
			if i > 0 && len(seps) > 0 {
				card.WriteString(joinersForFuzz[int(seps[i%len(seps)])%len(joinersForFuzz)])
			}
			if wide {
				d += '０' - '0'
			}
			card.WriteRune(d)
		}
		i := int(at % uint(len(s)+1))
		in := s[:i] + "x" + card.String() + "x" + s[i:]
		if !ContainsNormalized(in) {
			t.Fatalf("ContainsNormalized(%q) = false: planted card missed", in)
		}
	})
}
