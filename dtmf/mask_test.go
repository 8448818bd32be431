package dtmf

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/zaf/g711"
)

// toneSpans returns where the non-zero tone samples of a signal built from
// tones and silence lie.
func maskEdgeCases() []struct {
	name string
	spec toneSpec
	snr  float64
} {
	type c = struct {
		name string
		spec toneSpec
		snr  float64
	}
	base := toneSpec{onMs: 60, offMs: 80, lowDB: -10, highDB: -10}
	var out []c
	add := func(name string, mod func(*toneSpec), snr float64) {
		s := base
		mod(&s)
		out = append(out, c{name, s, snr})
	}
	add("nominal", func(*toneSpec) {}, 0)
	for _, lvl := range []float64{0, -25, -30, -45, -60, -75} {
		add(fmt.Sprintf("level %v", lvl), func(s *toneSpec) { s.lowDB, s.highDB = lvl, lvl }, 0)
	}
	for _, dev := range []float64{-5, -3.5, -2.5, -1.5, 1.5, 2.5, 3.5, 5} {
		add(fmt.Sprintf("deviation %v%%", dev), func(s *toneSpec) { s.devLo, s.devHi = dev, dev }, 0)
		add(fmt.Sprintf("deviation high %v%%", dev), func(s *toneSpec) { s.devHi = dev }, 0)
	}
	add("twist high +6", func(s *toneSpec) { s.lowDB, s.highDB = -16, -10 }, 0)
	add("twist low +10", func(s *toneSpec) { s.lowDB, s.highDB = -10, -20 }, 0)
	add("twist high +4 at -25", func(s *toneSpec) { s.lowDB, s.highDB = -29, -25 }, 0)
	add("twist high +10", func(s *toneSpec) { s.lowDB, s.highDB = -20, -10 }, 0)
	add("twist high +12 at -40", func(s *toneSpec) { s.lowDB, s.highDB = -52, -40 }, 0)
	add("twist low +12 at -40", func(s *toneSpec) { s.lowDB, s.highDB = -40, -52 }, 0)
	for _, d := range []int{15, 20, 23, 40} {
		add(fmt.Sprintf("duration %d ms", d), func(s *toneSpec) { s.onMs = d }, 0)
	}
	add("drop-out 10 ms", func(s *toneSpec) { s.onMs, s.dropAtMs, s.drop = 70, 30, 10 }, 0)
	add("snr 12 dB", func(*toneSpec) {}, 12)
	add("snr 12 dB at -25", func(s *toneSpec) { s.lowDB, s.highDB = -25, -25 }, 12)
	return out
}

func TestMaskCoversEveryToneSample(t *testing.T) {
	for _, c := range maskEdgeCases() {
		t.Run(c.name, func(t *testing.T) {
			var s signal
			s.silence(100)
			var tones []Span
			for i := range len(Digits) {
				spec := c.spec
				spec.digit = Digit(Digits[i])
				a := int64(len(s.pcm))
				s.tone(spec)
				tones = append(tones, Span{a, a + int64(spec.onMs*ms)})
			}
			if c.snr != 0 {
				s.noise(c.snr, c.spec.lowDB, 3)
			}
			spans, err := PlanMask(s.pcm, MaskConfig{})
			if err != nil {
				t.Fatal(err)
			}
			for i, tone := range tones {
				covered := false
				for _, sp := range spans {
					if sp.Start <= tone.Start && sp.End >= tone.End {
						covered = true
					}
				}
				if !covered {
					t.Errorf("tone %c at %d-%d not covered by mask spans %v", Digits[i], tone.Start, tone.End, near(spans, tone))
				}
			}
		})
	}
}

func near(spans []Span, t Span) []Span {
	var out []Span
	for _, s := range spans {
		if s.End > t.Start-800 && s.Start < t.End+800 {
			out = append(out, s)
		}
	}
	return out
}

// TestMaskerStream checks the streaming contract: output is the input
// delayed by the look-ahead, bit-exact outside tones, replaced inside.
func TestMaskerStream(t *testing.T) {
	var s signal
	s.silence(200)
	// Speech-like background: a low hum under everything.
	for i := range 12000 {
		s.pcm = append(s.pcm, int16(800*math.Sin(2*math.Pi*210*float64(i)/SampleRate)))
	}
	a := int64(len(s.pcm))
	s.tone(toneSpec{digit: '8', onMs: 90, offMs: 300, lowDB: -12, highDB: -12})
	b := a + 90*ms

	for _, codec := range []Codec{Linear16, PCMU, PCMA} {
		for _, mode := range []MaskMode{MaskTone, MaskSilence} {
			t.Run(fmt.Sprintf("codec %d mode %v", codec, mode), func(t *testing.T) {
				cfg := MaskConfig{Mode: mode, LookAhead: 40 * time.Millisecond}
				m, err := NewMasker(cfg, codec)
				if err != nil {
					t.Fatal(err)
				}
				D := int64(m.Delay())
				if D != 320 {
					t.Fatalf("delay %d, want 320", D)
				}
				var in []byte
				switch codec {
				case PCMU:
					in = g711.EncodeUlaw(le(s.pcm))
				case PCMA:
					in = g711.EncodeAlaw(le(s.pcm))
				}
				var events []Event
				outPCM := make([]int16, len(s.pcm))
				outRaw := make([]byte, len(in))
				for i := 0; i < len(s.pcm); i += 160 {
					j := min(i+160, len(s.pcm))
					if codec == Linear16 {
						events = m.PCM(s.pcm[i:j], outPCM[i:j], events)
					} else {
						events = m.G711(in[i:j], outRaw[i:j], events)
					}
				}
				if len(events) != 1 || events[0].Digit != '8' {
					t.Fatalf("events %v, want one '8'", events)
				}
				mask := make([]int16, 1)
				for n := D; n < int64(len(s.pcm)); n++ {
					src := n - D
					inTone := src >= a && src < b
					FillMask(mask, SampleRate, src, m.cfg)
					if codec != Linear16 && mask[0] != m.maskLin[src%int64(len(m.maskLin))] {
						t.Fatalf("mask table differs from FillMask at %d", src)
					}
					if codec == Linear16 {
						got := outPCM[n]
						if inTone && got != mask[0] {
							t.Fatalf("tone sample %d passed through", src)
						}
						if (src < a-400 || src >= b+400) && got != s.pcm[src] {
							t.Fatalf("sample %d altered: %d != %d", src, got, s.pcm[src])
						}
						continue
					}
					got := outRaw[n]
					if inTone && got != m.encode(mask[0]) {
						t.Fatalf("tone byte %d passed through", src)
					}
					if (src < a-400 || src >= b+400) && got != in[src] {
						t.Fatalf("byte %d altered", src)
					}
				}
				st := m.Stats()
				if st.Late != 0 {
					t.Errorf("late onsets: %d", st.Late)
				}
				if st.Masked < b-a || st.Masked > b-a+600 {
					t.Errorf("masked %d samples for a %d-sample tone", st.Masked, b-a)
				}
			})
		}
	}
}

func le(pcm []int16) []byte {
	b := make([]byte, 2*len(pcm))
	for i, v := range pcm {
		b[2*i], b[2*i+1] = byte(v), byte(uint16(v)>>8)
	}
	return b
}

func TestMaskConfigValidate(t *testing.T) {
	good := []MaskConfig{{}, {Mode: MaskSilence}, {LookAhead: MinLookAhead}, {ToneHz: 440}}
	for _, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	bad := []MaskConfig{{LookAhead: 5 * time.Millisecond}, {LookAhead: time.Second}, {ToneHz: 1000}, {ToneHz: 1336}, {Level: 3}, {Mode: 9}}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("%+v: want error", c)
		}
		if _, err := NewMasker(c, PCMU); err == nil {
			t.Errorf("%+v: NewMasker accepted it", c)
		}
	}
	if _, err := ParseMaskMode("loud"); err == nil {
		t.Error("ParseMaskMode accepted loud")
	}
}

func TestMaskerNoAllocs(t *testing.T) {
	var s signal
	s.silence(40)
	s.tone(toneSpec{digit: '3', onMs: 80, offMs: 80, lowDB: -10, highDB: -10})
	in := g711.EncodeUlaw(le(s.pcm))
	m, err := NewMasker(MaskConfig{}, PCMU)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 160)
	evs := make([]Event, 0, 4)
	allocs := testing.AllocsPerRun(50, func() {
		for i := 0; i+160 <= len(in); i += 160 {
			evs = m.G711(in[i:i+160], out, evs[:0])
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}

// TestMaskBuriedTone: presses typed into a voice that never pauses, as
// loud as it (each tone 1 dB under it), are masked for most of their
// length: the 12 ms windows see too much voice, the long window does not.
func TestMaskBuriedTone(t *testing.T) {
	raw := voiceSignal()
	bed := make([]int16, len(raw))
	DecodeG711(bed, raw, PCMU)
	var e float64
	for _, v := range bed {
		e += float64(v) * float64(v)
	}
	voice := 10 * math.Log10(e/float64(len(bed))/(ZeroDBm0Peak*ZeroDBm0Peak/2)) // dBm0
	perTone := voice - 1
	pcm := append([]int16(nil), bed...)
	var tones []Span
	for i := range 12 {
		a := int64(2000 + i*2500)
		n := int64(100 * ms)
		AddTone(pcm[a:a+n], SampleRate, a, Digit(Digits[i]), perTone, perTone)
		tones = append(tones, Span{a, a + n})
	}
	spans, err := PlanMask(pcm, MaskConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i, tone := range tones {
		var masked int64
		for _, s := range spans {
			masked += max(0, min(s.End, tone.End)-max(s.Start, tone.Start))
		}
		if frac := float64(masked) / float64(tone.End-tone.Start); frac < 0.7 {
			t.Errorf("press %c at %.1f dBm0 under voice at %.1f dBm0: %.0f %% masked", Digits[i], perTone, voice, 100*frac)
		}
	}
}
