package wav

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// FuzzRead: Parse never panics, every error is one of the four classes,
// and whatever parses survives a round trip: written back (bytes as read,
// or re-encoded from the decoded samples) it parses to the same format and
// the same samples. Seeds are in testdata/fuzz/FuzzRead.
//
//	go test ./dtmf/wav/ -run '^$' -fuzz FuzzRead -fuzztime 30s
func FuzzRead(f *testing.F) {
	f.Add(hdr{tag: 1, channels: 1, rate: 8000, bits: 16, data: pcm16(1, -1), dataSize: -1}.bytes())
	f.Add(hdr{tag: 0xFFFE, ext: true, sub: 7, channels: 2, rate: 8000, bits: 8, data: []byte{0x7F, 0xFF}, dataSize: -1}.bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Parse(b)
		if err != nil {
			n := 0
			for _, e := range []error{ErrNotWAV, ErrTruncated, ErrUnsupported, ErrMalformed} {
				if errors.Is(err, e) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %q matches %d of the error classes", err, n)
			}
			return
		}
		if len(a.Data) > len(b) || a.Format.Validate() != nil || len(a.Data)%a.Format.BlockAlign() != 0 {
			t.Fatalf("bad result %+v, %d data bytes of %d", a.Format, len(a.Data), len(b))
		}
		want := a.Format
		if want.Tag == TagExtensible && want.ValidBits == 0 {
			want.ValidBits = want.Bits // written out explicitly
		}

		var raw bytes.Buffer
		if _, err := a.WriteTo(&raw); err != nil {
			t.Fatal(err)
		}
		a2, err := Parse(raw.Bytes())
		if err != nil {
			t.Fatalf("written file does not parse: %v", err)
		}
		if a2.Format != want || !bytes.Equal(a2.Data, a.Data) {
			t.Fatalf("raw round trip: %+v → %+v", a.Format, a2.Format)
		}

		pcm := a.Decode()
		var enc bytes.Buffer
		if err := Write(&enc, a.Format, pcm); err != nil {
			t.Fatal(err)
		}
		a3, err := Parse(enc.Bytes())
		if err != nil {
			t.Fatalf("re-encoded file does not parse: %v", err)
		}
		if a3.Format != want {
			t.Fatalf("re-encode changed the format: %+v → %+v", a.Format, a3.Format)
		}
		for c, s := range a3.Decode() {
			if !slices.Equal(s, pcm[c]) {
				t.Fatalf("re-encode changed channel %d", c)
			}
		}
	})
}
