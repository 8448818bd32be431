package pan

import (
	"math"
	"strconv"
	"testing"
)

// Test card numbers only: Visa, Mastercard, Amex.
const (
	visa = "4111111111111111"
	mc   = "5555555555554444"
	amex = "378282246310005"
)

func TestLuhn(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{visa, true}, {mc, true}, {amex, true},
		{"4111111111111112", false},
		{"0", true}, {"", false}, {"79927398713", true}, {"79927398710", false},
		{"4111a11111111111", false},
	} {
		if got := Luhn(tc.in); got != tc.want {
			t.Errorf("Luhn(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{visa, "411111******1111"},
		{mc, "555555******4444"},
		{amex, "378282*****0005"},
		{"card " + visa + " ok", "card 411111******1111 ok"},
		{"pan=" + visa + ";", "pan=411111******1111;"},
		{"4111 1111 1111 1111", "4111 11** **** 1111"},
		{"4111-1111-1111-1111", "4111-11**-****-1111"},
		{"5555 5555 5555 4444 exp 12/29", "5555 55** **** 4444 exp 12/29"},
		{"3782 822463 10005", "3782 82**** *0005"},
		{"4111 - 1111 - 1111 - 1111", "4111 - 11** - **** - 1111"},
		{"4111  1111  1111  1111", "4111  11**  ****  1111"},
		// A card number followed by more digits in the same chain: the
		// window of the card itself still matches.
		{visa + " 2029", "411111******1111 2029"},
		{"12 " + visa, "12 411111******1111"},
		// Nothing to mask: not Luhn-valid, too short, too long, cut run.
		{"4111111111111112", "4111111111111112"},
		{"call +44 20 7946 0958 now", "call +44 20 7946 0958 now"},
		{"order 2024-000123-4567", "order 2024-000123-4567"},
		{"41111111111111110", "41111111111111110"},
		{"411111111111", "411111111111"}, // 12 digits, Luhn-invalid
		{"12345678901234567890", "12345678901234567890"},
		{"4111_1111_1111_1111", "4111_1111_1111_1111"},
		{"4111    1111 1111 1111", "4111    1111 1111 1111"}, // 4 spaces break the chain
		{"", ""},
		{"no digits here", "no digits here"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := string(RedactBytes([]byte(tc.in))); got != tc.want {
			t.Errorf("RedactBytes(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got, want := Contains(tc.in), tc.in != tc.want; got != want {
			t.Errorf("Contains(%q) = %v, want %v", tc.in, got, want)
		}
	}
}

// TestRedactHidesMiddle checks, for card numbers surrounded by other digit
// groups, that no more than the first 6 and last 4 of the card are shown.
func TestRedactHidesMiddle(t *testing.T) {
	for _, card := range []string{visa, mc, amex} {
		for _, pre := range []string{"", "1 ", "12 ", "123-", "9 8 7 ", "0000 "} {
			for _, post := range []string{"", " 1", " 12", "-123", " 2 2 2", " 0000"} {
				in := pre + card + post
				out := Redact(in)
				mid := out[len(pre)+keepFirst : len(pre)+len(card)-keepLast]
				for i := range mid {
					if mid[i] != Mask {
						t.Errorf("Redact(%q) = %q: middle of the card shown", in, out)
						break
					}
				}
			}
		}
	}
}

func TestRedactUnchangedIsSame(t *testing.T) {
	b := []byte("nothing 123")
	if got := RedactBytes(b); &got[0] != &b[0] {
		t.Error("RedactBytes copied a slice with nothing to mask")
	}
	c := []byte(visa)
	RedactBytes(c)
	if string(c) != visa {
		t.Error("RedactBytes changed its argument")
	}
}

func TestRedactInt(t *testing.T) {
	v, _ := strconv.ParseUint(visa, 10, 64)
	if s, ok := RedactUint(v); !ok || s != "411111******1111" {
		t.Errorf("RedactUint(visa) = %q, %v", s, ok)
	}
	if s, ok := RedactInt(-int64(v)); !ok || s != "-411111******1111" {
		t.Errorf("RedactInt(-visa) = %q, %v", s, ok)
	}
	for _, v := range []int64{0, 42, 4111111111111112, math.MinInt64, math.MaxInt64} {
		if s, ok := RedactInt(v); ok && v != math.MinInt64 && v != math.MaxInt64 {
			t.Errorf("RedactInt(%d) = %q, true", v, s)
		}
	}
	// Whatever they say, the two extremes must not panic and must agree
	// with the text finder.
	for _, v := range []int64{math.MinInt64, math.MaxInt64} {
		_, ok := RedactInt(v)
		if want := Contains(strconv.FormatInt(v, 10)); ok != want {
			t.Errorf("RedactInt(%d) ok = %v, want %v", v, ok, want)
		}
	}
}

func BenchmarkRedactNoDigits(b *testing.B) {
	s := "call 7f3a answered by agent after 3 rings on trunk b"
	for b.Loop() {
		Redact(s)
	}
}

func BenchmarkRedactCard(b *testing.B) {
	s := "customer read out 4111 1111 1111 1111 to the agent, order 2024-000123-4567"
	for b.Loop() {
		Redact(s)
	}
}

// FuzzRedact: masking never panics, keeps the length, changes digits to
// '*' only, agrees with Contains, and hides the middle of a card number
// put anywhere in the text.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"", visa, "4111 1111 1111 1111", "a1-2-3-4-5-6-7-8-9-0-1-2-3", "12 " + amex + " 3"} {
		f.Add(s, uint(0))
	}
	f.Fuzz(func(t *testing.T, s string, at uint) {
		check := func(in string) string {
			out := Redact(in)
			if len(out) != len(in) {
				t.Fatalf("Redact(%q) = %q: length changed", in, out)
			}
			for i := range in {
				if in[i] != out[i] && !(isDigit(in[i]) && out[i] == Mask) {
					t.Fatalf("Redact(%q) = %q: byte %d changed to %q", in, out, i, out[i])
				}
			}
			if (out != in) != Contains(in) {
				t.Fatalf("Redact(%q) = %q but Contains = %v", in, out, Contains(in))
			}
			return out
		}
		check(s)
		// Put a card number into s, with non-digit bytes around it so that
		// it stays a group of its own.
		i := int(at % uint(len(s)+1))
		in := s[:i] + "x" + visa + "x" + s[i:]
		out := check(in)
		if mid := out[i+1+6 : i+1+12]; mid != "******" {
			t.Fatalf("Redact(%q) = %q: middle of the card shown", in, out)
		}
	})
}
