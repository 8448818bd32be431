package psp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/prefix"
)

// TestPackMatchesMoovIO: Pack writes the bytes moov-io's Message.Pack
// would, bitmap included.
func TestPackMatchesMoovIO(t *testing.T) {
	for _, mti := range []string{"0100", "0110", "0200", "0210", "0400", "0401", "0410", "0800", "0810"} {
		t.Run(mti, func(t *testing.T) {
			m := message(t, mti)
			ours, err := Pack(m)
			if err != nil {
				t.Fatal(err)
			}
			theirs, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ours, theirs) {
				t.Errorf("Pack and moov-io differ (%d and %d bytes)", len(ours), len(theirs))
			}
			Wipe(m)
		})
	}
}

// TestPackGrowsOnce: given a buffer with room, the packed message goes in
// it, card data and all, without a new array (which would leave the old
// one's content behind); a card data field never grows the buffer.
func TestPackGrowsOnce(t *testing.T) {
	m := message(t, "0100")
	defer Wipe(m)
	size, err := Pack(m)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 2, 2+len(size))
	out, err := appendPack(dst, m)
	if err != nil {
		t.Fatal(err)
	}
	if &out[0] != &dst[0] || !bytes.Equal(out[2:], size) {
		t.Error("appendPack copied to a new array although the buffer had room")
	}
	if !bytes.Contains(out, []byte(testPAN)) {
		t.Fatal("control: the packed message holds no card number")
	}

	f := m.GetField(fPAN).(*Sensitive)
	full := make([]byte, 8, 8+len(testPAN)) // no room for the prefix
	got, err := f.appendPacked(full)
	if !errors.Is(err, errNoRoom) || len(got) != 8 || bytes.Contains(got[:cap(got)], []byte("4111")) {
		t.Errorf("appendPacked without room: %v, %d bytes", err, len(got))
	}
}

// TestPackRefusesBadCardData: a card data field that cannot be packed
// fails the message with a PackError, which quotes nothing.
func TestPackRefusesBadCardData(t *testing.T) {
	m := message(t, "0100")
	defer Wipe(m)
	if err := m.BinaryField(fCVV, []byte("73\x007")); err != nil {
		t.Fatal(err)
	}
	if _, err := Pack(m); !errors.As(err, new(*PackError)) {
		t.Fatalf("Pack with a control byte in the CVV: %v", err)
	}
	long := NewSensitive(&field.Spec{Length: 2, Pref: prefix.ASCII.LL})
	if err := long.SetBytes([]byte("123")); err != nil {
		t.Fatal(err)
	}
	if _, err := long.packedLen(); err == nil {
		t.Error("a value over the field's length packs")
	}
}
