package dtmf

import (
	"math"
	"math/rand/v2"
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

// voiceSignal is 4 s of voice-like audio without tones: harmonics of a
// gliding pitch shaped by two moving formants, over noise.
func voiceSignal() []byte {
	pcm := make([]int16, 4*SampleRate)
	r := rand.New(rand.NewPCG(5, 5))
	ph := 0.0
	for i := range pcm {
		t := float64(i) / SampleRate
		f0 := 150 + 40*math.Sin(2*math.Pi*1.3*t)
		ph += 2 * math.Pi * f0 / SampleRate
		f1, f2 := 600+250*math.Sin(2*math.Pi*3*t), 1500+500*math.Sin(2*math.Pi*2.1*t)
		v := 0.0
		for h := 1; h*int(f0) < 3400; h++ {
			f := float64(h) * f0
			g := 1/(1+math.Pow((f-f1)/150, 2)) + 0.5/(1+math.Pow((f-f2)/200, 2))
			v += g * math.Sin(float64(h)*ph)
		}
		pcm[i] = saturate(3000*v + 200*r.NormFloat64())
	}
	return g711.EncodeUlaw(le(pcm))
}

// BenchmarkMaskPacket is the relay's per-packet cost: inspect and mask one
// 20 ms G.711 packet (160 bytes) of the customer's audio, on audio that is
// half key presses (the worst case) and on voice.
func BenchmarkMaskPacket(b *testing.B) {
	for _, name := range []string{"presses", "voice"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(160)
			benchMask(b, PCMU, benchInput(name), (*Masker).G711)
		})
	}
}

// BenchmarkMaskPCM is the same on linear samples (Masker.PCM, for callers
// that decode the audio themselves; the relay masks G.711 as it comes):
// 160 samples a packet.
func BenchmarkMaskPCM(b *testing.B) {
	for _, name := range []string{"presses", "voice"} {
		b.Run(name, func(b *testing.B) {
			raw := benchInput(name)
			pcm := make([]int16, len(raw))
			DecodeG711(pcm, raw, PCMU)
			benchMask(b, Linear16, pcm, (*Masker).PCM)
		})
	}
}

func benchInput(name string) []byte {
	if name == "voice" {
		return voiceSignal()
	}
	return benchSignal()
}

// benchMask masks in 160 samples at a time through step, round and round.
func benchMask[T byte | int16](b *testing.B, codec Codec, in []T, step func(m *Masker, in, out []T, events []Event) []Event) {
	m, err := NewMasker(MaskConfig{}, codec)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]T, 160)
	evs := make([]Event, 0, 8)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i+160 > len(in) {
			i = 0
		}
		evs = step(m, in[i:i+160], out, evs[:0])
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
