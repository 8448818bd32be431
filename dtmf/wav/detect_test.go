package wav_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/dtmf/wav"
)

// press is one key press of a test signal: its two frequencies (Hz) and
// levels (dBm0 per tone), its length and the silence after it (ms).
type press struct {
	lo, hi      float64
	loDB, hiDB  float64
	onMS, offMS float64
}

// synth renders presses at rate, after 100 ms of lead and with 100 ms of
// tail, over noise at -55 dBm0. The same presses at two rates are the same
// continuous-time signal; only the noise differs.
func synth(rate int, ps []press, seed uint64) []int16 {
	total := 200.0
	for _, p := range ps {
		total += p.onMS + p.offMS
	}
	out := make([]float64, int(total*float64(rate)/1000))
	rng := rand.New(rand.NewPCG(seed, uint64(rate)))
	noise := dtmf.PeakForDBm0(-55) / math.Sqrt2 // RMS of a -55 dBm0 sine
	for i := range out {
		out[i] = noise * rng.NormFloat64()
	}
	t := 100.0
	for _, p := range ps {
		from, to := int(t*float64(rate)/1000), int((t+p.onMS)*float64(rate)/1000)
		a, b := dtmf.PeakForDBm0(p.loDB), dtmf.PeakForDBm0(p.hiDB)
		for i := from; i < to; i++ {
			s := float64(i-from) / float64(rate)
			out[i] += a*math.Sin(2*math.Pi*p.lo*s) + b*math.Sin(2*math.Pi*p.hi*s)
		}
		t += p.onMS + p.offMS
	}
	pcm := make([]int16, len(out))
	for i, v := range out {
		pcm[i] = int16(math.Round(max(-32768, min(32767, v))))
	}
	return pcm
}

func detect(pcm8k []int16) []dtmf.Event {
	d := dtmf.NewDetector(dtmf.DetectorConfig{})
	return d.Flush(d.Process(pcm8k, nil))
}

func keys(digits string, dev, loDB, hiDB, onMS, offMS float64) []press {
	var ps []press
	for i := range len(digits) {
		lo, hi, _ := dtmf.Frequencies(dtmf.Digit(digits[i]))
		ps = append(ps, press{lo: lo * (1 + dev), hi: hi * (1 + dev), loDB: loDB, hiDB: hiDB, onMS: onMS, offMS: offMS})
	}
	return ps
}

// parityCase is one signal: presses the detector must all find (want) or
// must all reject.
type parityCase struct {
	name    string
	presses []press
	want    bool
}

func parityCases() []parityCase {
	var cs []parityCase
	// Found: every key, the Q.24 level range, lengths from the shortest
	// that must be detected, ±1.5 % frequency error, the twist limits.
	for _, db := range []float64{0, -10, -20, -25} {
		for _, on := range []float64{40, 50, 80, 200} {
			cs = append(cs, parityCase{fmt.Sprintf("level %g dBm0, %g ms", db, on), keys(dtmf.Digits, 0, db, db, on, 60), true})
		}
	}
	for _, dev := range []float64{-0.015, 0.015} {
		cs = append(cs, parityCase{fmt.Sprintf("deviation %+.1f%%", dev*100), keys(dtmf.Digits, dev, -10, -10, 60, 60), true})
	}
	cs = append(cs,
		parityCase{"twist high +4 dB", keys(dtmf.Digits, 0, -14, -10, 60, 60), true},
		parityCase{"twist low +8 dB", keys(dtmf.Digits, 0, -10, -18, 60, 60), true},
		parityCase{"40 ms pause", keys("1234567890", 0, -10, -10, 50, 40), true},
	)
	// Rejected: too short, too far off frequency, too weak, too much twist.
	for _, on := range []float64{15, 20, 23} {
		cs = append(cs, parityCase{fmt.Sprintf("%g ms", on), keys(dtmf.Digits, 0, -10, -10, on, 60), false})
	}
	for _, dev := range []float64{-0.05, -0.035, 0.035, 0.05} {
		cs = append(cs, parityCase{fmt.Sprintf("deviation %+.1f%%", dev*100), keys(dtmf.Digits, dev, -10, -10, 60, 60), false})
	}
	cs = append(cs,
		parityCase{"level -45 dBm0", keys(dtmf.Digits, 0, -45, -45, 60, 60), false},
		parityCase{"twist high +12 dB", keys(dtmf.Digits, 0, -22, -10, 60, 60), false},
		parityCase{"twist low +16 dB", keys(dtmf.Digits, 0, -6, -22, 60, 60), false},
	)
	return cs
}

// aliasCase is, for every key, a pair of tones above 4 kHz that sampling
// at rate s (8 kHz, or a rate a resampler may pass through on the way)
// folds onto the key's frequencies: s ± f lands on f. At 8 kHz they do not
// exist, so the resampled signal must hold no digit either.
func aliasCase(rate int, s float64) (parityCase, bool) {
	var ps []press
	for i := range len(dtmf.Digits) {
		lo, hi, _ := dtmf.Frequencies(dtmf.Digit(dtmf.Digits[i]))
		for _, p := range [][2]float64{{s - lo, s - hi}, {s + lo, s + hi}} {
			if min(p[0], p[1]) > 4500 && max(p[0], p[1]) < float64(rate)/2-200 {
				ps = append(ps, press{lo: p[0], hi: p[1], loDB: -3, hiDB: -3, onMS: 80, offMS: 60})
				break
			}
		}
	}
	return parityCase{fmt.Sprintf("every key folded about %g Hz", s), ps, false}, len(ps) == len(dtmf.Digits)
}

// foldRates are 8 kHz and the rates halving rate passes through above it.
func foldRates(rate int) []float64 {
	fs := []float64{8000}
	for s := float64(rate) / 2; s > 8000; s /= 2 {
		fs = append(fs, s)
	}
	return fs
}

var parityRates = []int{44100, 48000, 16000, 11025, 22050, 96000}

// compareEvents says how got (from the resampled signal) differs from
// want (from the 8 kHz original): the same digits, each starting and
// ending within 4 ms (one detector hop).
func compareEvents(got, want []dtmf.Event) string {
	var b strings.Builder
	if len(got) != len(want) {
		fmt.Fprintf(&b, "%d digits, 8 kHz original %d;", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.Digit != w.Digit || abs64(g.Start-w.Start) > 32 || abs64(g.End-w.End) > 32 {
			fmt.Fprintf(&b, " #%d: %v [%d, %d) ms, original %v [%d, %d) ms;", i, g.Digit, g.Start/8, g.End/8, w.Digit, w.Start/8, w.End/8)
		}
	}
	return b.String()
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// TestResampledDetectionMatches8k: at every common recording rate, the
// detector finds in resampled audio exactly what it finds in the same
// tones generated at 8 kHz, and rejects what it rejects there.
func TestResampledDetectionMatches8k(t *testing.T) {
	for ci, c := range parityCases() {
		orig := detect(synth(8000, c.presses, uint64(ci)))
		// The original itself behaves as the case says, or the
		// comparison proves nothing.
		if c.want && len(orig) != len(c.presses) || !c.want && len(orig) != 0 {
			t.Fatalf("%s: the detector finds %d digits in the 8 kHz original, want %d", c.name, len(orig), map[bool]int{true: len(c.presses)}[c.want])
		}
		for _, rate := range parityRates {
			got, err := wav.To8k(synth(rate, c.presses, uint64(ci)), rate)
			if err != nil {
				t.Fatal(err)
			}
			if diff := compareEvents(detect(got), orig); diff != "" {
				t.Errorf("%d Hz, %s: %s", rate, c.name, diff)
			}
		}
	}
	folds := 0
	for _, rate := range parityRates {
		for _, s := range foldRates(rate) {
			c, ok := aliasCase(rate, s)
			if !ok {
				continue // no room above 4.5 kHz at this rate
			}
			folds++
			got, _ := wav.To8k(synth(rate, c.presses, 1), rate)
			if evs := detect(got); len(evs) != 0 {
				t.Errorf("%d Hz, %s: %d digits found, first %v", rate, c.name, len(evs), evs[0].Digit)
			}
		}
	}
	if folds < 10 {
		t.Errorf("only %d alias cases", folds)
	}
}

// The alias case has teeth: lowering the rate by linear interpolation,
// with no low-pass filter, turns every pair into its key.
func TestAliasCaseCatchesUnfilteredDecimation(t *testing.T) {
	for _, rate := range parityRates {
		c, ok := aliasCase(rate, 8000)
		if !ok {
			continue
		}
		in := synth(rate, c.presses, 1)
		naive := make([]int16, (len(in)-1)*8000/rate)
		for i := range naive {
			x := float64(i) * float64(rate) / 8000
			j := int(x)
			f := x - float64(j)
			naive[i] = int16(math.Round((1-f)*float64(in[j]) + f*float64(in[j+1])))
		}
		evs := detect(naive)
		var found strings.Builder
		for _, e := range evs {
			found.WriteByte(byte(e.Digit))
		}
		if found.String() != dtmf.Digits {
			t.Errorf("%d Hz: unfiltered decimation gives %q, want every key %q", rate, found.String(), dtmf.Digits)
		}
	}
}
