package psp

import "testing"

// BenchmarkPack packs a full 0100 (PAN, expiry, CVV and 14 other fields).
func BenchmarkPack(b *testing.B) {
	m := message(b, "0100")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Pack(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnpack unpacks the same 0100.
func BenchmarkUnpack(b *testing.B) {
	raw, err := Pack(message(b, "0100"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		m, err := Unpack(raw)
		if err != nil {
			b.Fatal(err)
		}
		Wipe(m)
	}
}
