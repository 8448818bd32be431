package tokenize

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/tonevault/tonevault/internal/pan"
)

// Token kinds.
const (
	// KindDigits tokens look like card numbers (same brand prefix and last
	// four for display and routing) but always fail the Luhn check, so a
	// token can never pass for a card number.
	KindDigits = "digits"
	// KindOpaque tokens are "tok_" and 26 base32 characters (128 bits
	// that look random to whoever lacks Vault's lookup key: see
	// candidate).
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

// candidate returns the n-th token candidate (n from 0) in format f for
// pan, whose lookup key is lookup; the caller has checked pan to be 12 to
// 19 ASCII digits. The token holds at most the first 6 and the last 4
// card digits (PCI DSS 3.4.1), so it is not card data; the rest comes
// from the lookup key (an HMAC of the card number under a key only Vault
// holds), so the same card always has the same candidates, and its token
// is found at its path with no index, while another card's candidates
// are unrelated. A digits token always fails the Luhn check.
func (f Format) candidate(pan []byte, lookup string, n int) (string, error) {
	src := newTokenStream(f.id(), lookup, n)
	if f.Kind == KindOpaque {
		var raw [16]byte
		src.read(raw[:])
		return OpaquePrefix + opaqueEncoding.EncodeToString(raw[:]), nil
	}
	l := f.Length
	if l == 0 {
		l = len(pan)
	}
	if l-f.KeepFirst-f.KeepLast < minRandomDigits {
		return "", fmt.Errorf("%w: format %s leaves fewer than %d random digits for a %d-digit card number",
			ErrInvalidInput, f.id(), minRandomDigits, len(pan))
	}
	tok := make([]byte, l)
	copy(tok, pan[:f.KeepFirst])
	copy(tok[l-f.KeepLast:], pan[len(pan)-f.KeepLast:])
	src.digits(tok[f.KeepFirst : l-f.KeepLast])
	if luhnValid(tok) {
		// Changing any one digit changes the Luhn sum mod 10 (doubling is a
		// permutation of 0-9), so the token now fails the check.
		i := f.KeepFirst
		tok[i] = '0' + (tok[i]-'0'+1)%10
	}
	return string(tok), nil
}

// tokenStream is the bytes a token candidate is made of: SHA-256 in
// counter mode over a seed that names the format, the lookup key and the
// candidate's number, so that formats and candidates draw independent
// bytes.
type tokenStream struct {
	seed  [sha256.Size]byte
	block uint32
	buf   []byte
}

func newTokenStream(format, lookup string, n int) *tokenStream {
	h := sha256.New()
	// The parts are separated by NUL, which none of them holds.
	fmt.Fprintf(h, "tonevault token\x00%s\x00%s\x00%d", format, lookup, n)
	s := &tokenStream{}
	h.Sum(s.seed[:0])
	return s
}

func (s *tokenStream) read(p []byte) {
	for len(p) > 0 {
		if len(s.buf) == 0 {
			var in [sha256.Size + 4]byte
			copy(in[:], s.seed[:])
			binary.BigEndian.PutUint32(in[sha256.Size:], s.block)
			s.block++
			sum := sha256.Sum256(in[:])
			s.buf = sum[:]
		}
		n := copy(p, s.buf)
		p, s.buf = p[n:], s.buf[n:]
	}
}

// digits fills b with ASCII digits, each equally likely.
func (s *tokenStream) digits(b []byte) {
	var r [1]byte
	for i := 0; i < len(b); {
		s.read(r[:])
		// Reject 250-255 so that each digit is equally likely.
		if r[0] < 250 {
			b[i] = '0' + r[0]%10
			i++
		}
	}
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
