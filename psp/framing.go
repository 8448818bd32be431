package psp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"

	"github.com/moov-io/iso8583"
	iso8583errors "github.com/moov-io/iso8583/errors"

	"github.com/tonevault/tonevault/internal/secret"
)

// Header is the length header in front of each message on the wire.
type Header int

const (
	// Binary2 is a 2-byte big-endian binary length (the default).
	Binary2 Header = iota
	// ASCII4 is 4 ASCII decimal digits.
	ASCII4
)

// ParseHeader reads "binary2" or "ascii4".
func ParseHeader(s string) (Header, error) {
	switch s {
	case "", "binary2":
		return Binary2, nil
	case "ascii4":
		return ASCII4, nil
	}
	return 0, fmt.Errorf("psp: length header %q: want binary2 or ascii4", s)
}

// UnmarshalText reads a header as ParseHeader does (configuration files).
func (h *Header) UnmarshalText(b []byte) error {
	v, err := ParseHeader(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// MarshalText writes the spelling ParseHeader reads.
func (h Header) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

func (h Header) String() string {
	if h == ASCII4 {
		return "ascii4"
	}
	return "binary2"
}

// MaxMessage bounds a message so a bad length header cannot make us
// allocate much.
const MaxMessage = 9999

// ReadLength reads one length header.
func (h Header) ReadLength(r io.Reader) (int, error) {
	switch h {
	case ASCII4:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, err
		}
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return 0, errors.New("psp: length header is not 4 ASCII digits")
			}
			n = n*10 + int(c-'0')
		}
		return n, nil
	default:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, err
		}
		n := int(binary.BigEndian.Uint16(b[:]))
		if n > MaxMessage {
			return 0, fmt.Errorf("psp: message length %d over %d", n, MaxMessage)
		}
		return n, nil
	}
}

// WriteLength writes one length header.
func (h Header) WriteLength(w io.Writer, n int) (int, error) {
	b, err := h.encode(n)
	if err != nil {
		return 0, err
	}
	return w.Write(b)
}

func (h Header) encode(n int) ([]byte, error) {
	if n < 0 || n > MaxMessage {
		return nil, fmt.Errorf("psp: message length %d outside 0..%d", n, MaxMessage)
	}
	if h == ASCII4 {
		s := strconv.Itoa(n)
		for len(s) < 4 {
			s = "0" + s
		}
		return []byte(s), nil
	}
	return binary.BigEndian.AppendUint16(nil, uint16(n)), nil
}

// ReadMessage reads one framed message and unpacks it. The raw bytes are
// wiped before it returns.
func (h Header) ReadMessage(r io.Reader) (*iso8583.Message, error) {
	n, err := h.ReadLength(r)
	if err != nil {
		return nil, err
	}
	raw := make([]byte, n)
	defer secret.Wipe(raw)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, err
	}
	m, err := Unpack(raw)
	if err != nil {
		// An *UnpackError tells iso8583-connection to keep reading: the
		// stream is still framed.
		return nil, &iso8583errors.UnpackError{Err: err, FieldID: unpackField(err)}
	}
	return m, nil
}

// WriteMessage packs m and writes header and message in one Write, then
// wipes the packed bytes. m's own card data fields are the caller's to
// wipe (Wipe).
func (h Header) WriteMessage(w io.Writer, m *iso8583.Message) error {
	buf, err := h.Frame(m)
	if err != nil {
		return err
	}
	defer secret.Wipe(buf)
	_, err = w.Write(buf)
	return err
}

// Frame packs m behind its length header, in one buffer: the only copy of
// the packed card data, which the caller wipes.
func (h Header) Frame(m *iso8583.Message) ([]byte, error) {
	hdrLen := 2
	if h == ASCII4 {
		hdrLen = 4
	}
	buf, err := appendPack(make([]byte, hdrLen), m)
	if err != nil {
		return nil, err
	}
	hdr, err := h.encode(len(buf) - hdrLen)
	if err != nil {
		secret.Wipe(buf)
		return nil, err
	}
	copy(buf, hdr)
	return buf, nil
}

// UnpackError is the only error Unpack returns. moov-io's own unpack
// errors quote field content (a garbled message can shift card digits into
// any field), so they are dropped and only the field number is kept.
type UnpackError struct {
	Field string // the field that failed, "0" for the MTI, "1" for the bitmap
}

func (e *UnpackError) Error() string {
	return "psp: cannot unpack ISO 8583 message at field " + e.Field
}

func unpackField(err error) string {
	var ue *UnpackError
	if errors.As(err, &ue) {
		return ue.Field
	}
	return ""
}

// Unpack parses one message (without its length header). Its errors carry
// no field content. A panic inside moov-io on hostile input becomes an
// error too.
func Unpack(raw []byte) (m *iso8583.Message, err error) {
	m = iso8583.NewMessage(Spec)
	defer func() {
		if recover() != nil {
			Wipe(m)
			m, err = nil, &UnpackError{Field: "?"}
		}
	}()
	if uerr := m.Unpack(raw); uerr != nil {
		id := "?"
		var ue *iso8583errors.UnpackError
		if errors.As(uerr, &ue) {
			ids := ue.FieldIDs()
			id = ids[len(ids)-1]
		}
		Wipe(m)
		return nil, &UnpackError{Field: id}
	}
	return m, nil
}

// PackError is the only error Pack returns; like UnpackError it drops
// moov-io's text.
type PackError struct{}

func (*PackError) Error() string { return "psp: cannot pack ISO 8583 message" }

// Pack packs m into one new buffer, which the caller wipes.
//
// Not moov-io's Message.Pack: that appends each packed field to a slice
// that starts empty, so the slice is copied to a larger array as it grows,
// and the arrays left behind hold the card number (field 2 comes early)
// until the garbage collector reuses them. Here the fields that hold no
// card data are packed first, the buffer is then made at its final size,
// and the card data fields write straight into it.
func Pack(m *iso8583.Message) ([]byte, error) { return appendPack(nil, m) }

// appendPack appends m, packed, to dst, which must hold no card data:
// dst is grown once, before any card data goes in.
func appendPack(dst []byte, m *iso8583.Message) ([]byte, error) {
	// Bitmap first: it also adds itself to the fields.
	bm := m.Bitmap()
	fields := m.GetFields()
	ids := slices.Sorted(maps.Keys(fields))
	bm.Reset()
	for _, id := range ids {
		if id >= 2 && !bm.IsBitmapPresenceBit(id) {
			bm.Set(id)
		}
	}
	// packed[i] is field ids[i] packed, or nil for a card data field,
	// whose size is counted in n.
	packed := make([][]byte, len(ids))
	n := len(dst)
	for i, id := range ids {
		if id != 1 && bm.IsBitmapPresenceBit(id) {
			continue
		}
		if s, ok := fields[id].(*Sensitive); ok {
			size, err := s.packedLen()
			if err != nil {
				return nil, &PackError{}
			}
			n += size
			continue
		}
		b, err := fields[id].Pack()
		if err != nil {
			return nil, &PackError{}
		}
		packed[i] = b
		n += len(b)
	}
	dst = slices.Grow(dst, n-len(dst))
	for i, id := range ids {
		if id != 1 && bm.IsBitmapPresenceBit(id) {
			continue
		}
		s, ok := fields[id].(*Sensitive)
		if !ok {
			dst = append(dst, packed[i]...)
			continue
		}
		var err error
		if dst, err = s.appendPacked(dst); err != nil {
			secret.Wipe(dst)
			return nil, &PackError{}
		}
	}
	return dst, nil
}

// Wipe zeroes the card data fields of m.
func Wipe(m *iso8583.Message) {
	if m == nil {
		return
	}
	for _, f := range m.GetFields() {
		if s, ok := f.(*Sensitive); ok {
			s.Wipe()
		}
	}
}
