package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/internal/pan"
)

var (
	// ErrCardData: a value would have put a card number on disk; nothing
	// was written. The error names the column, never the value.
	ErrCardData = errors.New("store: card data refused")
	// ErrInvalid: a value is not what its column holds; nothing was
	// written.
	ErrInvalid = errors.New("store: invalid value")
)

// Limits on what a column takes. They keep a caller's mistake from
// filling the disk, not the syntax of any standard.
const (
	maxText  = 1024    // free text: references, descriptions, correlation values
	maxBody  = 1 << 20 // an outbox event's body
	maxToken = 128
	maxError = 512 // an outbox failure's text, cut to this
	// maxSnapshot: a payment's snapshot (a View of a few fields is
	// about 1 KiB).
	maxSnapshot = 64 << 10
	// maxPrivateField: an ISO 8583 LLL field (60, 61).
	maxPrivateField = 999
)

// Every value is searched for a card number (internal/pan: 12 to 19
// digits, whole or in groups, passing Luhn), and a value with a syntax
// (ids, codes, ISO 8583 fields, the masked card number) is held to it as
// well. Either failure refuses the write.

// refuseCard fails when v holds a card number.
func refuseCard(column, v string) error {
	if pan.Contains(v) {
		return fmt.Errorf("%w: %s holds a card number", ErrCardData, column)
	}
	return nil
}

// freeText checks a free-text value: UTF-8, at most limit bytes, no card
// number.
func freeText(column, v string, limit int) error {
	if err := refuseCard(column, v); err != nil {
		return err
	}
	if len(v) > limit {
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalid, column, limit)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, column)
	}
	return nil
}

// syntax checks a value that must match valid (empty allowed when
// optional), and searches it for a card number too, since a syntax with
// digits in it (a name, an id) can leave room for one; the value itself
// is never in the error.
func syntax(column, v string, optional bool, valid func(string) bool, want string) error {
	if err := refuseCard(column, v); err != nil {
		return err
	}
	return syntaxOnly(column, v, optional, valid, want)
}

// syntaxOnly is syntax that searches only a value that fails its syntax:
// for a value whose syntax has no room for a card number but whose digits
// would often pass the search (see Reversal's RRN).
func syntaxOnly(column, v string, optional bool, valid func(string) bool, want string) error {
	if (v == "" && optional) || valid(v) {
		return nil
	}
	if err := refuseCard(column, v); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s is not %s", ErrInvalid, column, want)
}

// refuseCardAmount fails when an amount's decimal form is a card number:
// no real payment taken by phone is that large.
func refuseCardAmount(column string, v int64) error {
	if _, ok := pan.RedactInt(v); ok {
		return fmt.Errorf("%w: %s holds a card number", ErrCardData, column)
	}
	if v < 0 {
		return fmt.Errorf("%w: %s is negative", ErrInvalid, column)
	}
	return nil
}

// digest is the hex SHA-256 of a client's string that the store only ever
// matches (an idempotency key, a revoked token): what the client sent,
// a card number typed by mistake included, never reaches the disk.
func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func validID(s string) bool { return audit.ValidID(s) }

// validCode: 1 to 32 lowercase letters and '_' ("approved", "psp_timeout").
func validCode(s string) bool { return audit.ValidState(s) }

// validReason: a code, or a code with the acquirer's response code the
// gateway does not know after it ("declined_Q9"): 1 to 32 letters, digits
// and '_', starting with a lowercase letter. 32 characters leave no room
// for a card number in its digits alone, and the value is searched for
// one anyway.
func validReason(s string) bool {
	if validCode(s) {
		return true
	}
	if len(s) == 0 || len(s) > 32 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' {
			return false
		}
	}
	return true
}

func validCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	letters, digits := 0, 0
	for i := 0; i < 3; i++ {
		switch c := s[i]; {
		case 'A' <= c && c <= 'Z':
			letters++
		case '0' <= c && c <= '9':
			digits++
		}
	}
	return letters == 3 || digits == 3
}

// validAuthCode: ISO 8583 field 38, up to 6 letters, digits or spaces.
func validAuthCode(s string) bool {
	if len(s) == 0 || len(s) > 6 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != ' ' {
			return false
		}
	}
	return true
}

// validName: a header or field name, 1 to 64 letters, digits, '-' and '_'.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// validToken: 1 to maxToken printable ASCII characters.
func validToken(s string) bool {
	return len(s) > 0 && len(s) <= maxToken && printable(s)
}

// digitsN returns a check for exactly n ASCII digits.
func digitsN(n int) func(string) bool {
	return func(s string) bool {
		if len(s) != n {
			return false
		}
		for i := 0; i < n; i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
}

// printableN returns a check for 1 to n printable ASCII characters.
func printableN(n int) func(string) bool {
	return func(s string) bool { return len(s) > 0 && len(s) <= n && printable(s) }
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func validMaskedPAN(s string) bool    { return audit.ValidMaskedPAN(s) }
func validResponseCode(s string) bool { return audit.ValidResponseCode(s) }
