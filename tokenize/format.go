package tokenize

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"github.com/tonevault/tonevault/internal/pan"
	"strconv"
)

// Token kinds.
const (
	// KindDigits tokens look like card numbers (same brand prefix and last
	// four for display and routing) but always fail the Luhn check, so a
	// token can never pass for a card number.
	KindDigits = "digits"
	// KindOpaque tokens are "tok_" and 26 base32 characters (128 random
	// bits).
	KindOpaque = "opaque"
)

// OpaquePrefix starts every opaque token.
const OpaquePrefix = "tok_"

// minRandomDigits is the fewest random digits a digits token may have:
// fewer would make collisions (and guessing) too likely.
const minRandomDigits = 4

var opaqueEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// opaqueLen is len(OpaquePrefix) + base32 of 16 bytes.
const opaqueLen = 4 + 26

// Format is the shape of the tokens made for a merchant.
type Format struct {
	Kind string `yaml:"kind"` // KindDigits (default) or KindOpaque
	// KeepFirst is how many leading card digits a digits token keeps: 6
	// (the BIN, for routing and display) or 0.
	KeepFirst int `yaml:"keep_first"`
	// KeepLast is how many trailing card digits a digits token keeps: 4
	// or 0.
	KeepLast int `yaml:"keep_last"`
	// Length of a digits token: 0 for the card number's length, or 16 to
	// 19.
	Length int `yaml:"length"`
}

// Validate reports whether f is a format this package can make.
func (f Format) Validate() error {
	switch f.Kind {
	case KindOpaque:
		if f.KeepFirst != 0 || f.KeepLast != 0 || f.Length != 0 {
			return errors.New("opaque tokens keep no card digits and have a fixed length")
		}
		return nil
	case KindDigits, "":
	default:
		return fmt.Errorf("kind %q: want %s or %s", f.Kind, KindDigits, KindOpaque)
	}
	if f.KeepFirst != 0 && f.KeepFirst != 6 {
		return fmt.Errorf("keep_first %d: want 6 or 0", f.KeepFirst)
	}
	if f.KeepLast != 0 && f.KeepLast != 4 {
		return fmt.Errorf("keep_last %d: want 4 or 0", f.KeepLast)
	}
	if f.Length != 0 && (f.Length < 16 || f.Length > 19) {
		return fmt.Errorf("length %d: want 0 (the card number's length) or 16 to 19", f.Length)
	}
	return nil
}

// id names the format in the lookup index path, so that the same card gets
// the same token within one format, and a merchant with another format gets
// its own token.
func (f Format) id() string {
	if f.Kind == KindOpaque {
		return KindOpaque
	}
	l := "pan"
	if f.Length != 0 {
		l = strconv.Itoa(f.Length)
	}
	return fmt.Sprintf("digits-%d-%d-%s", f.KeepFirst, f.KeepLast, l)
}

// generate makes a new random token for pan, which the caller has checked
// to be 12 to 19 ASCII digits. The token holds at most the first 6 and the
// last 4 card digits (PCI DSS 3.4.1), so it is not card data.
func (f Format) generate(pan []byte) (string, error) {
	if f.Kind == KindOpaque {
		var raw [16]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return "", fmt.Errorf("tokenize: random: %w", err)
		}
		return OpaquePrefix + opaqueEncoding.EncodeToString(raw[:]), nil
	}
	n := f.Length
	if n == 0 {
		n = len(pan)
	}
	if n-f.KeepFirst-f.KeepLast < minRandomDigits {
		return "", fmt.Errorf("%w: format %s leaves fewer than %d random digits for a %d-digit card number",
			ErrInvalidInput, f.id(), minRandomDigits, len(pan))
	}
	tok := make([]byte, n)
	copy(tok, pan[:f.KeepFirst])
	copy(tok[n-f.KeepLast:], pan[len(pan)-f.KeepLast:])
	if err := randomDigits(tok[f.KeepFirst : n-f.KeepLast]); err != nil {
		return "", err
	}
	if luhnValid(tok) {
		// Changing any one digit changes the Luhn sum mod 10 (doubling is a
		// permutation of 0-9), so the token now fails the check.
		i := f.KeepFirst
		tok[i] = '0' + (tok[i]-'0'+1)%10
	}
	return string(tok), nil
}

// randomDigits fills b with uniformly random ASCII digits.
func randomDigits(b []byte) error {
	var buf [32]byte
	for i := 0; i < len(b); {
		if _, err := rand.Read(buf[:]); err != nil {
			return fmt.Errorf("tokenize: random: %w", err)
		}
		for _, r := range buf {
			// Reject 250-255 so that each digit is equally likely.
			if r < 250 && i < len(b) {
				b[i] = '0' + r%10
				i++
			}
		}
	}
	return nil
}

// luhnValid reports whether the ASCII digits in b pass the Luhn check.
func luhnValid(b []byte) bool { return pan.Luhn(b) }

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validToken accepts the shapes generate makes: it keeps anything else
// (a path, "..", a card number) out of KV paths.
func validToken(s string) bool {
	if len(s) == opaqueLen && s[:len(OpaquePrefix)] == OpaquePrefix {
		for i := len(OpaquePrefix); i < len(s); i++ {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
				return false
			}
		}
		return true
	}
	if len(s) < 12 || len(s) > 19 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	// A digits token never passes Luhn: a string that does is a card
	// number, not a token, and must not be looked up (or echoed).
	return !luhnValid([]byte(s))
}
