package pan

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// ContainsNormalized reports whether s holds a card number once the text
// is normalised the way a reader would: it is for free text a client sends
// (a description, a reference), where a card number may have been pasted
// from anywhere and written in any style. Contains alone would miss
// "4111.1111.1111.1111", "4111/1111/1111/1111", "4111_1111_1111_1111",
// fullwidth digits or a card number split by a zero-width space.
//
// The text is first put in Unicode compatibility form (NFKC), which turns
// fullwidth, superscript, circled and other compatibility digits and
// punctuation into their plain forms. Then every decimal digit of any
// script counts as its ASCII digit; spaces, dots, dashes of any kind,
// slashes, underscores, combining marks and invisible format characters
// join the digit groups on either side of them, however many there are;
// anything else ends a chain. The chains are then searched as Contains
// does: a window of consecutive groups holding 12 to 19 digits that pass
// the Luhn check is a card number.
//
// Whatever Contains finds, ContainsNormalized finds too.
func ContainsNormalized(s string) bool {
	if Contains(s) {
		return true
	}
	ascii, digits := true, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= utf8.RuneSelf:
			ascii = false
		case isDigit(c):
			digits++
		}
	}
	if ascii && digits < minDigits {
		// NFKC leaves ASCII as it is: fewer than 12 digits stay fewer.
		return false
	}
	return Contains(normalize(s))
}

// normalize rewrites s to digits, one space between the groups of a chain
// and 'x' between chains, which Contains reads with the rules above.
func normalize(s string) []byte {
	n := norm.NFKC.String(s)
	out := make([]byte, 0, len(n))
	last := byte('x')
	put := func(c byte) {
		if (c == ' ' || c == 'x') && (last == ' ' || last == 'x') {
			if c == 'x' {
				// A breaker wins over a pending joiner.
				out[len(out)-1] = 'x'
				last = 'x'
			}
			return
		}
		out = append(out, c)
		last = c
	}
	if len(n) > 0 {
		out = append(out, 'x')
	}
	for _, r := range n {
		switch {
		case r >= '0' && r <= '9':
			put(byte(r))
		case unicode.IsDigit(r):
			put('0' + digitValue(r))
		case joins(r):
			put(' ')
		default:
			put('x')
		}
	}
	return out
}

// joins reports whether r may stand between the digit groups of one card
// number.
func joins(r rune) bool {
	switch r {
	case '.', '/', '_', '\u2212', '\u2215', '\u2044', '\u00b7', '\u2027':
		// dot, slash, underscore, minus sign, division slash, fraction
		// slash, middle dot, hyphenation point
		return true
	}
	return unicode.IsSpace(r) || unicode.In(r, unicode.Zs, unicode.Pd, unicode.Mn, unicode.Me, unicode.Cf)
}

// digitValue is the value of a decimal digit of any script. Unicode
// encodes every script's digits as a contiguous run from 0 to 9 (a
// stability guarantee), some runs back to back, so the value is the
// distance from the start of the run, modulo 10.
func digitValue(r rune) byte {
	z := r
	for unicode.IsDigit(z - 1) {
		z--
	}
	return byte((r - z) % 10)
}
