package dtmf

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/zaf/g711"
)

const ms = SampleRate / 1000

// signal builds test audio: tones with per-press settings and silences.
type signal struct {
	pcm []int16
}

type toneSpec struct {
	digit          Digit
	onMs, offMs    int
	lowDB, highDB  float64 // dBm0 per tone
	devLo, devHi   float64 // frequency error, percent
	dropAtMs, drop int     // a drop-out of drop ms starting dropAtMs into the tone
}

func (s *signal) silence(msec int) { s.pcm = append(s.pcm, make([]int16, msec*ms)...) }

func (s *signal) tone(t toneSpec) {
	lo, hi, _ := Frequencies(t.digit)
	lo *= 1 + t.devLo/100
	hi *= 1 + t.devHi/100
	n := t.onMs * ms
	start := len(s.pcm)
	for i := range n {
		if t.drop > 0 && i >= t.dropAtMs*ms && i < (t.dropAtMs+t.drop)*ms {
			s.pcm = append(s.pcm, 0)
			continue
		}
		x := float64(start + i)
		v := PeakForDBm0(t.lowDB)*math.Sin(2*math.Pi*lo*x/SampleRate) +
			PeakForDBm0(t.highDB)*math.Sin(2*math.Pi*hi*x/SampleRate)
		s.pcm = append(s.pcm, saturate(v))
	}
	s.silence(t.offMs)
}

func (s *signal) noise(snrDB, toneDB float64, seed uint64) {
	// SNR against one tone pair's total power at toneDB per tone.
	p := 2 * math.Pow(PeakForDBm0(toneDB), 2) / 2
	sigma := math.Sqrt(p / math.Pow(10, snrDB/10))
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range s.pcm {
		s.pcm[i] = saturate(float64(s.pcm[i]) + r.NormFloat64()*sigma)
	}
}

func detectAll(cfg DetectorConfig, pcm []int16, chunk int) []Event {
	d := NewDetector(cfg)
	var evs []Event
	for len(pcm) > 0 {
		n := min(chunk, len(pcm))
		evs = d.Process(pcm[:n], evs)
		pcm = pcm[n:]
	}
	return d.Flush(evs)
}

func digitsOf(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteByte(byte(e.Digit))
	}
	return b.String()
}

func TestDetectQ24(t *testing.T) {
	type mod func(*toneSpec)
	cases := []struct {
		name string
		mod  mod
		want bool // all 16 digits found (true) or none (false)
	}{
		{"nominal -10 dBm0", func(*toneSpec) {}, true},
		{"level 0 dBm0", func(s *toneSpec) { s.lowDB, s.highDB = 0, 0 }, true},
		{"level -25 dBm0", func(s *toneSpec) { s.lowDB, s.highDB = -25, -25 }, true},
		{"twist high +4 dB", func(s *toneSpec) { s.lowDB, s.highDB = -14, -10 }, true},
		{"twist low +8 dB", func(s *toneSpec) { s.lowDB, s.highDB = -10, -18 }, true},
		{"deviation +1.5%", func(s *toneSpec) { s.devLo, s.devHi = 1.5, 1.5 }, true},
		{"deviation -1.5%", func(s *toneSpec) { s.devLo, s.devHi = -1.5, -1.5 }, true},
		{"deviation +2.5% low -2.5% high", func(s *toneSpec) { s.devLo, s.devHi = 2.5, -2.5 }, true},
		{"deviation +3.5%", func(s *toneSpec) { s.devLo, s.devHi = 3.5, 3.5 }, false},
		{"deviation -3.5%", func(s *toneSpec) { s.devLo, s.devHi = -3.5, -3.5 }, false},
		{"deviation low only +3.5%", func(s *toneSpec) { s.devLo = 3.5 }, false},
		{"deviation high only -3.5%", func(s *toneSpec) { s.devHi = -3.5 }, false},
		{"duration 40 ms", func(s *toneSpec) { s.onMs = 40 }, true},
		{"duration 23 ms", func(s *toneSpec) { s.onMs = 23 }, false},
		{"duration 20 ms", func(s *toneSpec) { s.onMs = 20 }, false},
		{"drop-out 10 ms", func(s *toneSpec) { s.onMs, s.dropAtMs, s.drop = 70, 30, 10 }, true},
		{"drop-out 10 ms at -25 dBm0", func(s *toneSpec) { s.onMs, s.dropAtMs, s.drop, s.lowDB, s.highDB = 70, 25, 10, -25, -25 }, true},
		{"pause 40 ms", func(s *toneSpec) { s.offMs = 40 }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, chunk := range []int{160, 1, 37, 4096} {
				var s signal
				s.silence(50)
				for i := range len(Digits) {
					ts := toneSpec{digit: Digit(Digits[i]), onMs: 60, offMs: 100, lowDB: -10, highDB: -10}
					c.mod(&ts)
					s.tone(ts)
				}
				got := digitsOf(detectAll(DetectorConfig{}, s.pcm, chunk))
				want := ""
				if c.want {
					want = Digits
				}
				if got != want {
					t.Fatalf("chunk %d: got %q, want %q", chunk, got, want)
				}
			}
		})
	}
}

func TestDetectSameDigitTwice(t *testing.T) {
	var s signal
	s.silence(30)
	for range 3 {
		s.tone(toneSpec{digit: '5', onMs: 45, offMs: 40, lowDB: -20, highDB: -20})
	}
	if got := digitsOf(detectAll(DetectorConfig{}, s.pcm, 160)); got != "555" {
		t.Fatalf("got %q, want 555", got)
	}
}

// TestDetectPressUnderSpeechBurst: a syllable louder than the tones in the
// middle of a long press spoils the windows' purity for up to 60 ms, longer than
// a drop-out, but the tones go on under it: one press, one digit. A real
// 40 ms pause still makes two.
func TestDetectPressUnderSpeechBurst(t *testing.T) {
	for _, burstMs := range []int{30, 40, 60} {
		var s signal
		s.silence(50)
		start := len(s.pcm)
		s.tone(toneSpec{digit: '8', onMs: 200, offMs: 100, lowDB: -20, highDB: -20})
		// Harmonics of a 140 Hz voice, 6 dB over each tone, away from
		// the DTMF frequencies.
		b := start + 80*ms
		for i := range burstMs * ms {
			x := float64(b + i)
			v := 0.0
			for _, h := range []float64{3, 4, 5, 8, 11} {
				v += math.Sin(2 * math.Pi * 140 * h * x / SampleRate)
			}
			s.pcm[b+i] = saturate(float64(s.pcm[b+i]) + PeakForDBm0(-14)*v)
		}
		if got := digitsOf(detectAll(DetectorConfig{}, s.pcm, 160)); got != "8" {
			t.Errorf("%d ms burst over a press: got %q, want one 8", burstMs, got)
		}
	}
}

func TestDetectNoise(t *testing.T) {
	var s signal
	s.silence(40)
	for i := range len(Digits) {
		s.tone(toneSpec{digit: Digit(Digits[i]), onMs: 50, offMs: 60, lowDB: -20, highDB: -20})
	}
	s.noise(12, -20, 7)
	if got := digitsOf(detectAll(DetectorConfig{}, s.pcm, 160)); got != Digits {
		t.Fatalf("12 dB SNR: got %q, want %q", got, Digits)
	}
	var quiet signal
	quiet.silence(3000)
	quiet.noise(-10, -20, 9) // loud white noise alone
	if got := digitsOf(detectAll(DetectorConfig{}, quiet.pcm, 160)); got != "" {
		t.Fatalf("noise alone: got %q", got)
	}
}

func TestDetectTiming(t *testing.T) {
	var s signal
	s.silence(100)
	s.tone(toneSpec{digit: '7', onMs: 80, offMs: 100, lowDB: -10, highDB: -10})
	evs := detectAll(DetectorConfig{}, s.pcm, 160)
	if len(evs) != 1 {
		t.Fatalf("got %v", evs)
	}
	e := evs[0]
	if d := e.Start - 100*ms; d < -4*ms || d > 4*ms {
		t.Errorf("start %d samples, want %d ±32", e.Start, 100*ms)
	}
	if d := e.Duration() - 80*ms; d < -4*ms || d > 4*ms {
		t.Errorf("duration %d samples, want %d ±32", e.Duration(), 80*ms)
	}
	if e.Source != InBand {
		t.Errorf("source %v", e.Source)
	}
}

func TestDetectorConfigValidate(t *testing.T) {
	if err := (DetectorConfig{}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []DetectorConfig{{MinLevel: 3}, {MaxDeviation: 9}, {MinPurity: 0.1}, {TwistHigh: -1}} {
		if c.Validate() == nil {
			t.Errorf("%+v: want error", c)
		}
	}
}

func TestDetectorNoAllocs(t *testing.T) {
	var s signal
	s.tone(toneSpec{digit: '9', onMs: 100, offMs: 60, lowDB: -10, highDB: -10})
	d := NewDetector(DetectorConfig{})
	evs := make([]Event, 0, 8)
	allocs := testing.AllocsPerRun(100, func() {
		for i := 0; i+160 <= len(s.pcm); i += 160 {
			evs = d.Process(s.pcm[i:i+160], evs[:0])
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}

func TestFastMath(t *testing.T) {
	for i := range 10000 {
		a := float64(i)/10000*2*math.Pi - math.Pi
		for _, r := range []float64{1e-3, 1, 1e6} {
			y, x := r*math.Sin(a), r*math.Cos(a)
			if d := math.Abs(atan2(y, x) - math.Atan2(y, x)); d > 2e-5 && d < 2*math.Pi-2e-5 {
				t.Fatalf("atan2(%v, %v) off by %v", y, x, d)
			}
		}
	}
	for df := -120.0; df <= 120; df += 0.37 {
		x := math.Pi * df * winLen / SampleRate
		want := 1.0
		if x != 0 {
			want = math.Pow(math.Sin(x)/x, 2)
		}
		want = max(want, 0.1)
		if d := math.Abs(gain2(df) - want); d > 0.01 {
			t.Fatalf("gain2(%v) = %v, want %v", df, gain2(df), want)
		}
	}
}

// TestGoertzel8: the assembly filters give the Go ones' results to the bit,
// for every length a sub-block can be cut into.
func TestGoertzel8(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := range subLen + 2 {
		x := make([]float64, n)
		for i := range x {
			x[i] = float64(int16(r.Uint32()))
		}
		var a1, a2, b1, b2 [8]float64
		for k := range 8 {
			a1[k] = r.NormFloat64() * 1e4
			a2[k] = r.NormFloat64() * 1e4
		}
		b1, b2 = a1, a2
		goertzel8(x, &a1, &a2, &goertzel.coef)
		goertzel8Go(x, &b1, &b2, &goertzel.coef)
		if a1 != b1 || a2 != b2 {
			t.Fatalf("%d samples: %v %v, want %v %v", n, a1, a2, b1, b2)
		}
	}
}

// TestGoertzel8Subs: the filters run over several sub-blocks at once give
// the Go filters' results, sub-block by sub-block from rest, to the bit.
func TestGoertzel8Subs(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		name string
		gen  func(i int) int16
	}{
		{"random", func(int) int16 { return int16(r.Uint32()) }},
		{"full scale", func(i int) int16 { return []int16{math.MaxInt16, math.MinInt16}[i%2] }},
		{"min", func(int) int16 { return math.MinInt16 }},
		{"quiet", func(int) int16 { return int16(r.IntN(3) - 1) }},
		{"silence", func(int) int16 { return 0 }},
	} {
		for k := 1; k <= batchSubs; k++ {
			var x [batchSubs * subLen]float64
			for i := range x {
				x[i] = float64(c.gen(i))
			}
			var got, want [batchSubs][2][8]float64
			for j := range got {
				// Garbage to start from: every sub-block starts at rest.
				for i := range 8 {
					got[j][0][i], got[j][1][i] = r.NormFloat64(), r.NormFloat64()
				}
			}
			goertzel8Subs(&x, &got, k)
			goertzel8SubsGo(&x, &want, k)
			for j := range k {
				if got[j] != want[j] {
					t.Fatalf("%s, %d sub-blocks: sub-block %d %v, want %v", c.name, k, j, got[j], want[j])
				}
			}
		}
	}
}

// TestG711ToFloat: the tables decode as the G.711 library does, and the
// energy is the plain sum of squares.
func TestG711ToFloat(t *testing.T) {
	for _, c := range []struct {
		name   string
		table  *g711Table
		decode func(byte) int16
	}{
		{"µ-law", &ulaw, g711.DecodeUlawFrame},
		{"A-law", &alaw, g711.DecodeAlawFrame},
	} {
		in := make([]byte, 256)
		for i := range in {
			in[i] = byte(i)
		}
		for n := range len(in) + 1 {
			var x [256]float64
			e := g711ToFloat(x[:n], in[:n], c.table)
			want := 0.0
			for i, b := range in[:n] {
				v := float64(c.decode(b))
				if x[i] != v {
					t.Fatalf("%s: byte %#x decoded to %v, want %v", c.name, b, x[i], v)
				}
				want += v * v
			}
			if e != want {
				t.Fatalf("%s, %d bytes: energy %v, want %v", c.name, n, e, want)
			}
		}
	}
}
