// Package pan finds card numbers in text: runs of 12 to 19 ASCII digits
// that pass the Luhn check, written either in one piece
// ("4111111111111111") or in groups separated the way people type them
// ("4111 1111 1111 1111", "4111-1111-1111-1111").
//
// It is shared by the audit trail, which refuses records that contain a
// card number, the operational logger, which masks them, and every package
// that checks a card number's Luhn digit (capture, api, tokenize, psp/sim).
//
// What counts as a card number:
//   - A group is a maximal run of ASCII digits '0'-'9'. A group is never
//     cut: the 16 digits at the end of "41111111111111110" are not a card
//     number, because the run has 17 digits and fails the Luhn check as a
//     whole.
//   - Groups form a chain when the bytes between two of them are 1 to 3
//     spaces or dashes.
//   - A window is a run of consecutive groups of one chain (a single group
//     included) holding 12 to 19 digits in total. A window whose digits pass
//     the Luhn check is a card number.
//
// Masking keeps the first 6 and the last 4 digits of every matching window
// and replaces each digit between them with '*'; separators stay where they
// are, so the text keeps its length. When windows overlap, every digit that
// any of them masks is masked: extra windows only ever hide more.
//
// These finders look at ASCII digits only. ContainsNormalized is the check
// for free text from clients: it reads digits of every script and more
// separators (see its comment).
package pan

// Mask is the byte that replaces a hidden digit.
const Mask = '*'

const (
	minDigits = 12
	maxDigits = 19
	keepFirst = 6
	keepLast  = 4
	maxSep    = 3 // separator bytes allowed between two groups of a chain
)

// text is what the finders accept.
type text interface{ ~string | ~[]byte }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isSep(c byte) bool   { return c == ' ' || c == '-' }

// Luhn reports whether d, which must hold ASCII digits only, passes the Luhn
// (mod 10) check. It is false for an empty d or any non-digit.
func Luhn[T text](d T) bool {
	if len(d) == 0 {
		return false
	}
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		c := d[i]
		if !isDigit(c) {
			return false
		}
		v := int(c - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// group is a maximal digit run, s[start:end].
type group struct{ start, end int }

// scan calls hit for every matching window of s, with the groups of the
// window. It stops when hit returns false.
func scan[T text](s T, hit func(w []group, digits int) bool) {
	// Fast path: fewer than 12 digits in all cannot match.
	n := 0
	for i := 0; i < len(s) && n < minDigits; i++ {
		if isDigit(s[i]) {
			n++
		}
	}
	if n < minDigits {
		return
	}
	var buf [24]group
	chain := buf[:0]
	flush := func() bool {
		ok := scanChain(s, chain, hit)
		chain = chain[:0]
		return ok
	}
	i := 0
	for i < len(s) {
		if !isDigit(s[i]) {
			i++
			continue
		}
		g := group{start: i}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		g.end = i
		if len(chain) > 0 {
			prev := chain[len(chain)-1]
			if !joined(s, prev.end, g.start) {
				if !flush() {
					return
				}
			}
		}
		chain = append(chain, g)
	}
	flush()
}

// joined reports whether s[from:to] is an allowed separator between two
// groups of a chain.
func joined[T text](s T, from, to int) bool {
	if to-from < 1 || to-from > maxSep {
		return false
	}
	for k := from; k < to; k++ {
		if !isSep(s[k]) {
			return false
		}
	}
	return true
}

func scanChain[T text](s T, chain []group, hit func(w []group, digits int) bool) bool {
	for i := range chain {
		digits := 0
		for j := i; j < len(chain); j++ {
			digits += chain[j].end - chain[j].start
			if digits > maxDigits {
				break
			}
			if digits >= minDigits && luhnGroups(s, chain[i:j+1]) {
				if !hit(chain[i:j+1], digits) {
					return false
				}
			}
		}
	}
	return true
}

func luhnGroups[T text](s T, w []group) bool {
	sum := 0
	double := false
	for gi := len(w) - 1; gi >= 0; gi-- {
		for k := w[gi].end - 1; k >= w[gi].start; k-- {
			v := int(s[k] - '0')
			if double {
				v *= 2
				if v > 9 {
					v -= 9
				}
			}
			sum += v
			double = !double
		}
	}
	return sum%10 == 0
}

// Contains reports whether s holds a card number.
func Contains[T text](s T) bool {
	found := false
	scan(s, func([]group, int) bool {
		found = true
		return false
	})
	return found
}

// maskInto sets Mask on the digits that must be hidden, copying s into a
// new buffer on the first change. It returns nil when nothing is hidden.
func maskInto[T text](s T) []byte {
	var out []byte
	scan(s, func(w []group, digits int) bool {
		if out == nil {
			out = append([]byte(nil), s...) // a copy, for []byte too
		}
		idx := 0
		for _, g := range w {
			for k := g.start; k < g.end; k++ {
				if idx >= keepFirst && idx < digits-keepLast {
					out[k] = Mask
				}
				idx++
			}
		}
		return true
	})
	return out
}

// Redact returns s with every card number masked to its first 6 and last 4
// digits. It returns s itself when there is nothing to mask.
func Redact(s string) string {
	if out := maskInto(s); out != nil {
		return string(out)
	}
	return s
}

// RedactBytes is Redact for a byte slice. It never changes b: it returns b
// itself when there is nothing to mask, and a masked copy otherwise.
func RedactBytes(b []byte) []byte {
	if out := maskInto(b); out != nil {
		return out
	}
	return b
}

// RedactUint returns v as masked decimal text and true when its decimal
// form is a card number, or "", false.
func RedactUint(v uint64) (string, bool) {
	if v < 100_000_000_000 { // fewer than 12 digits
		return "", false
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	out := maskInto(b[i:])
	if out == nil {
		return "", false
	}
	return string(out), true
}

// RedactInt is RedactUint for a signed value; a minus sign is kept.
func RedactInt(v int64) (string, bool) {
	if v >= 0 {
		return RedactUint(uint64(v))
	}
	s, ok := RedactUint(uint64(-(v + 1)) + 1)
	if !ok {
		return "", false
	}
	return "-" + s, true
}
