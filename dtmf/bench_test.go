package dtmf

import (
	"testing"

	"github.com/zaf/g711"
)

// benchSignal is 2 s of call audio with presses in it: hum, tones, silence.
func benchSignal() []byte {
	var s signal
	for i := range 6 {
		s.silence(120)
		s.tone(toneSpec{digit: Digit(Digits[i]), onMs: 90, offMs: 110, lowDB: -12, highDB: -12})
	}
	s.noise(30, -12, 1)
	return g711.EncodeUlaw(le(s.pcm))
}

// BenchmarkMaskPacket is the relay's per-packet cost: inspect and mask one
// 20 ms G.711 packet (160 bytes) of the customer's audio.
func BenchmarkMaskPacket(b *testing.B) {
	in := benchSignal()
	m, err := NewMasker(MaskConfig{}, PCMU)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]byte, 160)
	evs := make([]Event, 0, 8)
	b.ReportAllocs()
	b.SetBytes(160)
	i := 0
	for b.Loop() {
		if i+160 > len(in) {
			i = 0
		}
		evs = m.G711(in[i:i+160], out, evs[:0])
		i += 160
	}
}

// BenchmarkDetectPacket is detection alone on linear samples.
func BenchmarkDetectPacket(b *testing.B) {
	raw := benchSignal()
	pcm := make([]int16, len(raw))
	DecodeG711(pcm, raw, PCMU)
	d := NewDetector(DetectorConfig{})
	evs := make([]Event, 0, 8)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i+160 > len(pcm) {
			i = 0
		}
		evs = d.Process(pcm[i:i+160], evs[:0])
		i += 160
	}
}
