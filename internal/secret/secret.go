// Package secret holds card data (PAN, expiry, security code) as bytes that
// can be wiped and that never print.
//
// DESIGN.md invariant 4: card data is never a Go string (strings are
// immutable and copied freely, so they cannot be wiped), never logged and
// never in an error. A Secret is a struct with an unexported slice, so
// string(s) does not compile, and its String, GoString, Format,
// MarshalJSON, MarshalText and LogValue all yield a fixed placeholder: a
// Secret that slips into a log call, an fmt verb or a JSON document shows
// nothing of its content.
package secret

import (
	"fmt"
	"log/slog"
)

// Redacted is what a Secret prints as, whatever it holds.
const Redacted = "[redacted]"

// Secret is card data in memory. The zero value is empty. Copies of a
// Secret share their bytes: Wipe on one wipes all.
type Secret struct {
	b []byte
}

// New copies b into a new Secret, on the heap (see Alloc). The caller
// should wipe b if it is card data.
func New(b []byte) Secret {
	return Secret{b: append(Alloc(len(b)), b...)}
}

// Alloc returns an empty buffer with room for n bytes, always on the heap:
// for card data built in a buffer that does not leave its function (one
// that does, stored in a heap object or returned by a function too large
// to inline, is on the heap anyway).
//
// Card data must never be on a goroutine stack. A goroutine whose stack
// runs out gets a larger one: the runtime copies the stack there and
// frees the old one without clearing it, so a buffer wiped where it lives
// now stays readable where it lived (until that memory happens to be used
// again). And the compiler puts a buffer on the stack whenever it can: a
// make or an append of up to 32 bytes that does not escape (Go 1.25 on),
// which fits any card number or "exp:" + card number + ":" + expiry. A
// slice returned by a function that is never inlined always escapes.
//
//go:noinline
func Alloc(n int) []byte { return make([]byte, 0, n) }

// Wrap makes b a Secret without copying it: the Secret and b are the same
// bytes, and wiping either wipes both. For a buffer that already holds
// card data and that its owner wipes (a payment session's field).
func Wrap(b []byte) Secret { return Secret{b: b} }

// Bytes returns the bytes themselves, not a copy, to hand to a cipher or
// a wire encoder. Never convert them to a string, and never keep them
// past the Secret's wipe.
func (s Secret) Bytes() []byte { return s.b }

// Len is the number of bytes held.
func (s Secret) Len() int { return len(s.b) }

// Wipe overwrites the content with zeros. It is safe on the zero Secret.
func (s Secret) Wipe() { Wipe(s.b) }

// Wipe zeroes b. clear compiles to a memclr the compiler does not drop for
// a slice that escapes, which every Secret's does.
func Wipe(b []byte) { clear(b) }

// Wiped reports whether every byte is zero (true for an empty Secret).
func (s Secret) Wiped() bool {
	for _, c := range s.b {
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
