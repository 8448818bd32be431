package psp

import (
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/moov-io/iso8583/field"

	"github.com/tonevault/tonevault/internal/secret"
)

// Sensitive is a moov-io field for card data: PAN (2), expiry (14), track
// data (35, 45), PIN block (52) and the CVV (126). moov-io's String field
// keeps its value as a Go string, which cannot be wiped and which its
// String(), JSON and describe output print in clear. Sensitive keeps the
// value as bytes it owns, packs them without making a string, prints only
// secret.Redacted, and Wipe zeroes the value and the last packed form.
// Pack (the package's function) packs it straight into the message's
// buffer.
//
// Its spec must use ASCII encoding (the field's Enc is ignored: values are
// checked to be printable ASCII here, so no encoder error can quote them)
// and an ASCII length prefix.
type Sensitive struct {
	mu     sync.Mutex // Wipe may run while the connection's writer packs
	spec   *field.Spec
	value  []byte
	packed []byte
}

var errSensitiveValue = errors.New("card data field holds a non-printable byte")

// NewSensitive returns a field for spec.
func NewSensitive(spec *field.Spec) *Sensitive { return &Sensitive{spec: spec} }

func (f *Sensitive) NewInstance() field.Field { return &Sensitive{spec: f.spec} }
func (f *Sensitive) Spec() *field.Spec        { return f.spec }
func (f *Sensitive) SetSpec(spec *field.Spec) { f.spec = spec }

// SetBytes copies b; the caller keeps (and wipes) b.
func (f *Sensitive) SetBytes(b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	secret.Wipe(f.value)
	f.value = append(make([]byte, 0, len(b)), b...)
	return nil
}

// Bytes returns a copy, which the caller must wipe.
func (f *Sensitive) Bytes() ([]byte, error) {
	if f == nil {
		return nil, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.value...), nil
}

// Secret returns a copy as a secret.Secret, which the caller must wipe.
func (f *Sensitive) Secret() secret.Secret {
	b, _ := f.Bytes()
	return secret.Wrap(b)
}

// Wipe zeroes the value and the packed form this field returned last.
func (f *Sensitive) Wipe() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	secret.Wipe(f.value)
	secret.Wipe(f.packed)
	f.value, f.packed = nil, nil
}

// String never returns the value: moov-io's describe and JSON call it.
func (f *Sensitive) String() (string, error) { return secret.Redacted, nil }

func (f *Sensitive) MarshalJSON() ([]byte, error) { return []byte(`"` + secret.Redacted + `"`), nil }

// Pack is moov-io's: a new slice, kept to be wiped with the value.
// Pack (the package's) does not use it; see appendPacked.
func (f *Sensitive) Pack() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	prefix, err := f.prefix()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(prefix)+len(f.value))
	out = append(append(out, prefix...), f.value...)
	secret.Wipe(f.packed)
	f.packed = out
	return out, nil
}

// packedLen is the size of the packed field.
func (f *Sensitive) packedLen() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	prefix, err := f.prefix()
	return len(prefix) + len(f.value), err
}

// appendPacked appends the packed field to dst, which must have room for
// it (packedLen): growing dst would leave a copy of what it holds behind.
func (f *Sensitive) appendPacked(dst []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	prefix, err := f.prefix()
	if err != nil {
		return dst, err
	}
	if cap(dst)-len(dst) < len(prefix)+len(f.value) {
		return dst, errNoRoom
	}
	return append(append(dst, prefix...), f.value...), nil
}

var errNoRoom = errors.New("card data field: no room in the buffer")

// prefix checks the value and returns its length prefix. Caller holds mu.
func (f *Sensitive) prefix() ([]byte, error) {
	for _, c := range f.value {
		if c < 0x20 || c > 0x7e {
			return nil, errSensitiveValue
		}
	}
	// Length errors quote only lengths.
	prefix, err := f.spec.Pref.EncodeLength(f.spec.Length, len(f.value))
	if err != nil {
		return nil, fmt.Errorf("card data field length: %w", err)
	}
	return prefix, nil
}

func (f *Sensitive) Unpack(data []byte) (int, error) {
	n, prefLen, err := f.spec.Pref.DecodeLength(f.spec.Length, data)
	if err != nil {
		return 0, fmt.Errorf("card data field length: %w", err)
	}
	if n < 0 || len(data)-prefLen < n {
		return 0, fmt.Errorf("card data field: need %d bytes, have %d", n, len(data)-prefLen)
	}
	v := data[prefLen : prefLen+n]
	for _, c := range v {
		if c < 0x20 || c > 0x7e {
			return 0, errSensitiveValue
		}
	}
	if err := f.SetBytes(v); err != nil {
		return 0, err
	}
	return prefLen + n, nil
}

// SetData is moov-io's deprecated Marshal.
func (f *Sensitive) SetData(v any) error { return f.Marshal(v) }

// Marshal accepts only bytes: a string of card data must not exist.
func (f *Sensitive) Marshal(v any) error {
	switch v := v.(type) {
	case nil:
		return f.SetBytes(nil)
	case []byte:
		return f.SetBytes(v)
	case secret.Secret:
		return f.SetBytes(v.Bytes())
	case *Sensitive:
		b, _ := v.Bytes()
		defer secret.Wipe(b)
		return f.SetBytes(b)
	}
	return fmt.Errorf("card data field takes []byte or secret.Secret, not %s", reflect.TypeOf(v))
}

// Unmarshal copies the value into a *[]byte or *secret.Secret.
func (f *Sensitive) Unmarshal(v any) error {
	b, _ := f.Bytes()
	switch v := v.(type) {
	case *[]byte:
		*v = b
		return nil
	case *secret.Secret:
		*v = secret.Wrap(b)
		return nil
	}
	secret.Wipe(b)
	return fmt.Errorf("card data field unmarshals into *[]byte or *secret.Secret, not %s", reflect.TypeOf(v))
}
