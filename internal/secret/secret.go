// Package secret holds card data (PAN, expiry, security code) as bytes that
// can be wiped and that never print.
//
// DESIGN.md invariant 4: card data is never a Go string (strings are
// immutable and copied freely, so they cannot be wiped), never logged and
// never in an error. A Secret's String, GoString, Format, MarshalJSON and
// MarshalText all yield a fixed placeholder, so a Secret that slips into a
// log call, an fmt verb or a JSON document shows nothing of its content.
package secret

import (
	"fmt"
	"log/slog"
)

// Redacted is what a Secret prints as, whatever it holds.
const Redacted = "[redacted]"

// Secret is card data in memory. The zero value is empty. Copies of a
// Secret share the backing array: Wipe on one wipes all.
type Secret []byte

// New copies b into a new Secret. The caller should wipe b if it is card
// data.
func New(b []byte) Secret {
	s := make(Secret, len(b))
	copy(s, b)
	return s
}

// Bytes returns the underlying bytes, to hand to a cipher or a wire
// encoder. Never convert them to a string.
func (s Secret) Bytes() []byte { return s }

// Len is the number of bytes held.
func (s Secret) Len() int { return len(s) }

// Wipe overwrites the content with zeros. It is safe on a nil Secret.
func (s Secret) Wipe() { Wipe(s) }

// Wipe zeroes b. clear compiles to a memclr the compiler does not drop for
// a slice that escapes, which every Secret does.
func Wipe(b []byte) { clear(b) }

// Wiped reports whether every byte is zero (true for an empty Secret).
func (s Secret) Wiped() bool {
	for _, c := range s {
		if c != 0 {
			return false
		}
	}
	return true
}

func (Secret) String() string   { return Redacted }
func (Secret) GoString() string { return Redacted }

// Format makes every fmt verb (%s, %v, %x, %q, %d, ...) print the
// placeholder.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }
func (Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue keeps slog (and zap through zapslog) from reflecting into the
// bytes.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }
