// Package corpus builds the signals that ToneVault's DTMF tests run on, all
// 8 kHz mono 16-bit linear PCM:
//
//   - a DTMF synthesizer with per-tone level, twist, frequency deviation,
//     on/off times, drop-outs, ramps and white noise at a given SNR
//     (Params, Press, Signal, Generate);
//   - Q24Cases: all 16 digits at every ITU-T Q.24 edge of DESIGN.md, with
//     the digits a compliant detector must report;
//   - TalkOff (Speech, Music, Synthetic): speech, music and tones without
//     DTMF, on which no detector may report a digit;
//   - OverSpeech: digits overlaid on speech, for the masking leak tests.
//
// It is test tooling: the talk-off set runs espeak-ng and sox and reads
// Debian's Asterisk sound packages, caching the converted audio under
// os.UserCacheDir()/tonevault-corpus. Levels are set with dtmf.PeakForDBm0;
// nothing else of package dtmf is used, so the corpus stays independent of
// the detector under test.
package corpus

import (
	"math"
	"math/rand/v2"

	"github.com/tonevault/tonevault/dtmf"
)

// SampleRate of every signal in this package.
const SampleRate = 8000

// AllDigits are the 16 keypad symbols in keypad reading order.
const AllDigits = "123A456B789C*0#D"

var (
	lowHz  = [4]float64{697, 770, 852, 941}
	highHz = [4]float64{1209, 1336, 1477, 1633}
	keys   = [4]string{"123A", "456B", "789C", "*0#D"}
)

// Freqs returns the nominal low-group and high-group frequencies of d.
func Freqs(d dtmf.Digit) (low, high float64, ok bool) {
	for r, row := range keys {
		for c := 0; c < 4; c++ {
			if row[c] == byte(d) {
				return lowHz[r], highHz[c], true
			}
		}
	}
	return 0, 0, false
}

// ms converts milliseconds to a whole number of samples.
func ms(v float64) int { return int(math.Round(v * SampleRate / 1000)) }

// Dropout is a gap inside a tone: both tones are silent for LenMs starting
// AtMs after the tone's first sample. The tone generator keeps running
// through the gap (phase continues), as on a line that drops out.
type Dropout struct{ AtMs, LenMs float64 }

// Press is one key press as generated.
type Press struct {
	Digit      dtmf.Digit
	LowDBm0    float64   // level of the low-group tone
	HighDBm0   float64   // level of the high-group tone
	LowDevPct  float64   // low-group frequency deviation, percent, signed
	HighDevPct float64   // high-group frequency deviation, percent, signed
	OnMs       float64   // tone duration, drop-outs included
	OffMs      float64   // silence after the tone
	RampMs     float64   // raised-cosine rise and fall at the tone's edges; 0 = hard edges
	Dropouts   []Dropout // gaps inside the tone
}

// Params describe every press of a sequence. TwistDB is the high-group
// level minus the low-group level: +4 means the high tone is 4 dB louder,
// -8 means the low tone is 8 dB louder.
type Params struct {
	LevelDBm0  float64 // low-group tone level; the high tone is LevelDBm0+TwistDB
	TwistDB    float64
	LowDevPct  float64
	HighDevPct float64
	OnMs       float64
	OffMs      float64
	RampMs     float64
	Dropouts   []Dropout
}

// DefaultParams: both tones at -10 dBm0, nominal frequencies, 60 ms on,
// 100 ms off, hard edges.
func DefaultParams() Params {
	return Params{LevelDBm0: -10, OnMs: 60, OffMs: 100}
}

// Press returns the press of digit d with p.
func (p Params) Press(d dtmf.Digit) Press {
	return Press{
		Digit:      d,
		LowDBm0:    p.LevelDBm0,
		HighDBm0:   p.LevelDBm0 + p.TwistDB,
		LowDevPct:  p.LowDevPct,
		HighDevPct: p.HighDevPct,
		OnMs:       p.OnMs,
		OffMs:      p.OffMs,
		RampMs:     p.RampMs,
		Dropouts:   append([]Dropout(nil), p.Dropouts...),
	}
}

// Presses returns one press per digit of digits, all with p.
func (p Params) Presses(digits string) []Press {
	out := make([]Press, 0, len(digits))
	for i := 0; i < len(digits); i++ {
		out = append(out, p.Press(dtmf.Digit(digits[i])))
	}
	return out
}

// Span is where one generated press lies in a signal, in samples (End
// exclusive, drop-outs included).
type Span struct {
	Digit      dtmf.Digit
	Start, End int
}

// Signal says how presses are laid out and what noise is added.
//
// SNR, when Noise is set, is the ratio of the total tone power (both tones
// of a press, A_low²/2 + A_high²/2, averaged over the presses) to the power
// of the added white Gaussian noise over the whole 0-4 kHz band (at 8 kHz
// sampling, white noise of variance σ² has all of its power σ² in 0-4 kHz).
// The noise runs through the whole signal, silences included.
type Signal struct {
	LeadMs float64 // silence before the first press
	TailMs float64 // silence after the last press's OffMs
	Noise  bool
	SNRdB  float64
	Seed   uint64 // seeds the tone phases and the noise
}

// DefaultSignal: 100 ms of silence at both ends, no noise, seed 1.
func DefaultSignal() Signal { return Signal{LeadMs: 100, TailMs: 100, Seed: 1} }

// Render generates presses laid out by s. Samples beyond 16-bit range
// are clipped (two tones at 0 dBm0 each peak at 6 dB over a 0 dBm0 sine,
// beyond G.711's +3.14 dBm0 overload point).
func (s Signal) Render(presses []Press) []int16 {
	pcm, _ := s.RenderSpans(presses)
	return pcm
}

// RenderSpans is Render that also returns where each press lies.
func (s Signal) RenderSpans(presses []Press) ([]int16, []Span) {
	total := ms(s.LeadMs) + ms(s.TailMs)
	for _, p := range presses {
		total += ms(p.OnMs) + ms(p.OffMs)
	}
	buf := make([]float64, total)
	spans := make([]Span, 0, len(presses))
	rng := rand.New(rand.NewPCG(s.Seed, 0x746f6e657661756c))
	pos := ms(s.LeadMs)
	var tonePower float64
	for _, p := range presses {
		n := ms(p.OnMs)
		addPress(buf[pos:pos+n], p, rng)
		spans = append(spans, Span{Digit: p.Digit, Start: pos, End: pos + n})
		al, ah := dtmf.PeakForDBm0(p.LowDBm0), dtmf.PeakForDBm0(p.HighDBm0)
		tonePower += al*al/2 + ah*ah/2
		pos += n + ms(p.OffMs)
	}
	if s.Noise && len(presses) > 0 {
		tonePower /= float64(len(presses))
		sigma := math.Sqrt(tonePower / math.Pow(10, s.SNRdB/10))
		nrng := rand.New(rand.NewPCG(s.Seed, 0x6e6f697365))
		for i := range buf {
			buf[i] += sigma * nrng.NormFloat64()
		}
	}
	return toPCM(buf), spans
}

// addPress adds one press's tones into buf (len(buf) = tone length).
func addPress(buf []float64, p Press, rng *rand.Rand) {
	fl, fh, ok := Freqs(p.Digit)
	if !ok {
		panic("corpus: not a DTMF digit: " + string(rune(p.Digit)))
	}
	fl *= 1 + p.LowDevPct/100
	fh *= 1 + p.HighDevPct/100
	al, ah := dtmf.PeakForDBm0(p.LowDBm0), dtmf.PeakForDBm0(p.HighDBm0)
	phl, phh := 2*math.Pi*rng.Float64(), 2*math.Pi*rng.Float64()
	wl, wh := 2*math.Pi*fl/SampleRate, 2*math.Pi*fh/SampleRate
	n := len(buf)
	ramp := ms(p.RampMs)
	if 2*ramp > n {
		ramp = n / 2
	}
	for i := 0; i < n; i++ {
		if inDropout(i, p.Dropouts) {
			continue
		}
		g := 1.0
		if ramp > 0 {
			if i < ramp {
				g = 0.5 - 0.5*math.Cos(math.Pi*(float64(i)+0.5)/float64(ramp))
			} else if j := n - 1 - i; j < ramp {
				g = 0.5 - 0.5*math.Cos(math.Pi*(float64(j)+0.5)/float64(ramp))
			}
		}
		buf[i] += g * (al*math.Sin(wl*float64(i)+phl) + ah*math.Sin(wh*float64(i)+phh))
	}
}

func inDropout(i int, ds []Dropout) bool {
	for _, d := range ds {
		a := ms(d.AtMs)
		if i >= a && i < a+ms(d.LenMs) {
			return true
		}
	}
	return false
}

// toPCM rounds and clips to 16 bits.
func toPCM(buf []float64) []int16 {
	out := make([]int16, len(buf))
	for i, v := range buf {
		out[i] = clip16(v)
	}
	return out
}

func clip16(v float64) int16 {
	v = math.Round(v)
	if v > 32767 {
		return 32767
	}
	if v < -32768 {
		return -32768
	}
	return int16(v)
}

// Generate renders digits with p and DefaultSignal (100 ms silence at both
// ends, no noise, seed 1).
func Generate(digits string, p Params) []int16 {
	return DefaultSignal().Render(p.Presses(digits))
}

// Silence returns msec of digital silence.
func Silence(msec float64) []int16 { return make([]int16, ms(msec)) }

// WhiteNoise returns msec of white Gaussian noise at dbm0 (mean power equal
// to that of a dbm0 sine), deterministic with seed.
func WhiteNoise(msec, dbm0 float64, seed uint64) []int16 {
	a := dtmf.PeakForDBm0(dbm0)
	sigma := a / math.Sqrt2
	rng := rand.New(rand.NewPCG(seed, 0x776e))
	buf := make([]float64, ms(msec))
	for i := range buf {
		buf[i] = sigma * rng.NormFloat64()
	}
	return toPCM(buf)
}

// Tone returns a single sine of freq Hz at dbm0 lasting msec, with 5 ms
// raised-cosine edges (a whistle or a test tone, not DTMF).
func Tone(freq, dbm0, msec float64) []int16 {
	n := ms(msec)
	a := dtmf.PeakForDBm0(dbm0)
	buf := make([]float64, n)
	for i := range buf {
		buf[i] = a * math.Sin(2*math.Pi*freq*float64(i)/SampleRate)
	}
	fade(buf, ms(5))
	return toPCM(buf)
}

// fade applies raised-cosine edges of r samples.
func fade(buf []float64, r int) {
	n := len(buf)
	if 2*r > n {
		r = n / 2
	}
	for i := 0; i < r; i++ {
		g := 0.5 - 0.5*math.Cos(math.Pi*(float64(i)+0.5)/float64(r))
		buf[i] *= g
		buf[n-1-i] *= g
	}
}

// Mix returns a + b sample by sample (the longer length), clipped.
func Mix(a, b []int16) []int16 {
	n := max(len(a), len(b))
	out := make([]int16, n)
	for i := range out {
		var v float64
		if i < len(a) {
			v += float64(a[i])
		}
		if i < len(b) {
			v += float64(b[i])
		}
		out[i] = clip16(v)
	}
	return out
}

// Concat joins signals.
func Concat(parts ...[]int16) []int16 {
	var n int
	for _, p := range parts {
		n += len(p)
	}
	out := make([]int16, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// LevelDBm0 returns the mean power of pcm in dBm0 (the level of a sine of
// the same power); -Inf for digital silence.
func LevelDBm0(pcm []int16) float64 {
	if len(pcm) == 0 {
		return math.Inf(-1)
	}
	var e float64
	for _, v := range pcm {
		e += float64(v) * float64(v)
	}
	return powerToDBm0(e / float64(len(pcm)))
}

func powerToDBm0(p float64) float64 {
	if p <= 0 {
		return math.Inf(-1)
	}
	a := dtmf.PeakForDBm0(0)
	return 10 * math.Log10(p/(a*a/2))
}

// ActiveLevelDBm0 returns the mean power in dBm0 of the 10 ms frames that
// are within 30 dB of the loudest frame, a simple active-speech level.
func ActiveLevelDBm0(pcm []int16) float64 {
	const frame = 80
	var pows []float64
	var peak float64
	for i := 0; i+frame <= len(pcm); i += frame {
		var e float64
		for _, v := range pcm[i : i+frame] {
			e += float64(v) * float64(v)
		}
		e /= frame
		pows = append(pows, e)
		peak = max(peak, e)
	}
	var sum float64
	var n int
	for _, p := range pows {
		if p > 0 && p >= peak/1000 {
			sum += p
			n++
		}
	}
	if n == 0 {
		return math.Inf(-1)
	}
	return powerToDBm0(sum / float64(n))
}

// Scale returns pcm multiplied by gainDB, clipped.
func Scale(pcm []int16, gainDB float64) []int16 {
	g := math.Pow(10, gainDB/20)
	out := make([]int16, len(pcm))
	for i, v := range pcm {
		out[i] = clip16(float64(v) * g)
	}
	return out
}
