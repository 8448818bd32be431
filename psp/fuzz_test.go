package psp

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

var longDigits = regexp.MustCompile(`[0-9]{7,}`)

// FuzzUnpack feeds arbitrary bytes to the unpack path the connector reads
// acquirer answers with. It must not panic, its errors must quote nothing
// of the input, and what unpacks must pack and unpack again.
func FuzzUnpack(f *testing.F) {
	for _, mti := range []string{"0100", "0110", "0200", "0210", "0400", "0410", "0800", "0810"} {
		b, err := Pack(message(f, mti))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		in := append([]byte(nil), raw...)
		m, err := Unpack(raw)
		if !bytes.Equal(in, raw) {
			t.Fatal("Unpack changed its input")
		}
		if err != nil {
			if longDigits.MatchString(err.Error()) {
				t.Fatalf("error quotes digits: %v", err)
			}
			return
		}
		defer Wipe(m)
		packed, err := Pack(m)
		if err != nil {
			return // e.g. a value that unpads to something the packer rejects
		}
		m2, err := Unpack(packed)
		if err != nil {
			t.Fatalf("repacked message does not unpack: %v", err)
		}
		Wipe(m2)
		var buf bytes.Buffer
		if err := ASCII4.WriteMessage(&buf, m); err != nil {
			t.Fatalf("framing: %v", err)
		}
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzUnpack from the message
// templates: PSP_WRITE_SEEDS=1 go test ./psp -run TestWriteFuzzSeeds
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("PSP_WRITE_SEEDS") == "" {
		t.Skip("set PSP_WRITE_SEEDS=1 to rewrite testdata/fuzz/FuzzUnpack")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzUnpack")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, mti := range []string{"0100", "0110", "0200", "0210", "0400", "0401", "0410", "0800", "0810"} {
		b, err := Pack(message(t, mti))
		if err != nil {
			t.Fatal(err)
		}
		write("msg-"+mti, b)
		write("cut-"+mti, b[:len(b)/2])
		c := append([]byte(nil), b...)
		c[len(c)/3] = 0xff
		write("bad-byte-"+mti, c)
	}
	write("empty", nil)
	write("mti-only", []byte("0110"))
	write("bitmap-all", []byte("0110FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"))
	write("lll-huge", []byte("0100000000000000008099999"))
}
