package corpus

import (
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/tonevault/tonevault/dtmf"
)

// Case categories. Cases in every category but CatBeyond carry a
// requirement (Want); CatBeyond cases lie past a Q.24 limit on the side
// where the standard requires nothing.
const (
	CatFrequency       = "frequency"        // deviation ±1.5 % (and margin ±2.0/±2.5 %): detect
	CatLevel           = "level"            // 0 to -25 dBm0 per tone: detect
	CatTwist           = "twist"            // high +4 dB, low +8 dB: detect
	CatDuration        = "duration"         // 40 ms: detect
	CatDropout         = "dropout"          // ≤ 10 ms gap inside a 60-80 ms tone: one digit
	CatPause           = "pause"            // 40 ms between two presses of the same digit: two digits
	CatSNR             = "snr"              // 12 dB (and 15, 18 dB): detect
	CatRejectShort     = "reject-short"     // 23 ms and 20 ms: reject
	CatRejectDeviation = "reject-deviation" // ±3.5 % and ±5 %: reject
	CatBeyond          = "beyond"           // twist +6/+10 dB, 30 ms: no requirement
)

// Categories lists every category in report order.
var Categories = []string{
	CatFrequency, CatLevel, CatTwist, CatDuration, CatDropout, CatPause, CatSNR,
	CatRejectShort, CatRejectDeviation, CatBeyond,
}

// Case is one test signal with the digits a Q.24-compliant detector must
// report.
type Case struct {
	Name     string
	Category string
	PCM      []int16
	// Want is what a compliant detector reports, in order: the digits sent
	// for detect categories, "" when every press must be rejected. For
	// CatBeyond there is no requirement and Want equals Sent.
	Want string
	// Sent is one digit per generated press, in order (what an aggressive
	// leak detector should see).
	Sent string
	// Tones says where each press lies in PCM.
	Tones []Span
}

// Required reports whether the case carries a detection requirement: every
// Q.24 category but CatBeyond (the masking cases of MaskingCases and
// UnderSpeech carry none).
func (c Case) Required() bool {
	for _, cat := range Categories {
		if c.Category == cat {
			return cat != CatBeyond
		}
	}
	return false
}

// MustReject reports whether every press of the case must be rejected.
func (c Case) MustReject() bool { return c.Required() && c.Want == "" }

func seedOf(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// q24Gap is the silence between presses in Q24Cases.
const q24Gap = 100

func mkCase(name, cat string, presses []Press, sig Signal, reject bool) Case {
	if sig.Seed == 0 {
		sig.Seed = seedOf(name)
	}
	pcm, spans := sig.RenderSpans(presses)
	var sent strings.Builder
	for _, p := range presses {
		sent.WriteByte(byte(p.Digit))
	}
	c := Case{Name: name, Category: cat, PCM: pcm, Sent: sent.String(), Tones: spans}
	if !reject {
		c.Want = c.Sent
	}
	return c
}

func sig() Signal { return Signal{LeadMs: 100, TailMs: 100} }

// Q24Cases returns the ITU-T Q.24 edge set of DESIGN.md, all 16 digits
// per case with 100 ms between presses, deterministic (each case seeded by
// its name). Unless a case says otherwise: both tones at -10 dBm0, nominal
// frequencies, 60 ms tones, hard edges, no noise.
func Q24Cases() []Case {
	var cs []Case
	base := DefaultParams() // -10 dBm0, 60 ms on, 100 ms off
	digits := AllDigits

	// Frequency deviation: ±1.5 % must be detected; ±2.0 and ±2.5 % are the
	// margin the issue asks for (detect); ±3.5 and ±5 % must be rejected.
	// Each both tones, low tone only, high tone only, in both directions.
	type which struct {
		name      string
		low, high bool
	}
	whiches := []which{{"both", true, true}, {"low", true, false}, {"high", false, true}}
	for _, dev := range []float64{1.5, 2.0, 2.5, 3.5, 5.0} {
		for _, sign := range []float64{+1, -1} {
			for _, w := range whiches {
				p := base
				if w.low {
					p.LowDevPct = sign * dev
				}
				if w.high {
					p.HighDevPct = sign * dev
				}
				cat, reject := CatFrequency, false
				if dev >= 3.5 {
					cat, reject = CatRejectDeviation, true
				}
				name := fmt.Sprintf("%s/%+.1f%%/%s", cat, sign*dev, w.name)
				cs = append(cs, mkCase(name, cat, p.Presses(digits), sig(), reject))
			}
		}
		if dev < 3.5 {
			// Tones deviated in opposite directions.
			for _, sign := range []float64{+1, -1} {
				p := base
				p.LowDevPct, p.HighDevPct = sign*dev, -sign*dev
				name := fmt.Sprintf("%s/low%+.1f%%,high%+.1f%%", CatFrequency, sign*dev, -sign*dev)
				cs = append(cs, mkCase(name, CatFrequency, p.Presses(digits), sig(), false))
			}
		}
	}

	// Level: 0 to -25 dBm0 per tone. Two tones at 0 dBm0 clip in 16 bits
	// (as in G.711); -3 dBm0 per tone is the loudest pair that does not.
	for _, lvl := range []float64{0, -3, -5, -10, -15, -20, -25} {
		p := base
		p.LevelDBm0 = lvl
		cs = append(cs, mkCase(fmt.Sprintf("%s/%gdBm0", CatLevel, lvl), CatLevel, p.Presses(digits), sig(), false))
	}
	// 1 ms raised-cosine ramps, at a loud and at the weakest level.
	for _, lvl := range []float64{-10, -25} {
		p := base
		p.LevelDBm0, p.RampMs = lvl, 1
		cs = append(cs, mkCase(fmt.Sprintf("%s/%gdBm0/ramp1ms", CatLevel, lvl), CatLevel, p.Presses(digits), sig(), false))
	}

	// Twist (TwistDB = high minus low): high group up to 4 dB louder, low
	// group up to 8 dB louder must be detected; 6 and 10 dB are beyond.
	twists := []struct {
		twist, low float64 // twist and low-tone level; high = low + twist
		cat        string
	}{
		{+4, -12, CatTwist}, {+4, -22, CatTwist}, // high 4 dB louder: -12/-8, -22/-18
		{-8, -6, CatTwist}, {-8, -17, CatTwist}, // low 8 dB louder: -6/-14, -17/-25
		{+6, -13, CatBeyond}, {-10, -5, CatBeyond},
	}
	for _, tw := range twists {
		p := base
		p.LevelDBm0, p.TwistDB = tw.low, tw.twist
		side := "high"
		if tw.twist < 0 {
			side = "low"
		}
		name := fmt.Sprintf("%s/%s+%gdB/low%gdBm0,high%gdBm0", tw.cat, side, abs(tw.twist), tw.low, tw.low+tw.twist)
		cs = append(cs, mkCase(name, tw.cat, p.Presses(digits), sig(), false))
	}

	// Duration: ≥ 40 ms detect, ≤ 23 ms reject, 30 ms in between.
	for _, d := range []struct {
		on     float64
		cat    string
		reject bool
	}{
		{40, CatDuration, false}, {45, CatDuration, false},
		{23, CatRejectShort, true}, {20, CatRejectShort, true},
		{30, CatBeyond, false},
	} {
		p := base
		p.OnMs = d.on
		cs = append(cs, mkCase(fmt.Sprintf("%s/%gms", d.cat, d.on), d.cat, p.Presses(digits), sig(), d.reject))
		if d.on == 40 || d.on == 23 {
			// The same at the weakest level.
			p.LevelDBm0 = -25
			cs = append(cs, mkCase(fmt.Sprintf("%s/%gms/-25dBm0", d.cat, d.on), d.cat, p.Presses(digits), sig(), d.reject))
		}
	}

	// Drop-outs of ≤ 10 ms inside 60-80 ms tones: one digit each.
	for _, d := range []struct {
		on float64
		ds []Dropout
	}{
		{60, []Dropout{{25, 10}}},
		{70, []Dropout{{30, 10}}},
		{80, []Dropout{{35, 10}}},
		{80, []Dropout{{20, 10}}},
		{80, []Dropout{{50, 10}}},
		{70, []Dropout{{30, 5}}},
		{80, []Dropout{{20, 5}, {50, 5}}},
	} {
		p := base
		p.OnMs, p.Dropouts = d.on, d.ds
		var parts []string
		for _, x := range d.ds {
			parts = append(parts, fmt.Sprintf("%gms@%gms", x.LenMs, x.AtMs))
		}
		name := fmt.Sprintf("%s/%gms-tone/%s", CatDropout, d.on, strings.Join(parts, "+"))
		cs = append(cs, mkCase(name, CatDropout, p.Presses(digits), sig(), false))
	}

	// Pause: two presses of the same digit 40 ms apart are two digits.
	for _, on := range []float64{50, 40} {
		var presses []Press
		for i := 0; i < len(digits); i++ {
			p := base
			p.OnMs, p.OffMs = on, 40
			presses = append(presses, p.Press(dtmf.Digit(digits[i])))
			p.OffMs = q24Gap
			presses = append(presses, p.Press(dtmf.Digit(digits[i])))
		}
		cs = append(cs, mkCase(fmt.Sprintf("%s/40ms/%gms-tones", CatPause, on), CatPause, presses, sig(), false))
	}

	// SNR (total tone power over white noise in 0-4 kHz).
	for _, s := range []struct{ snr, lvl float64 }{{12, -10}, {12, -20}, {15, -10}, {18, -25}} {
		p := base
		p.LevelDBm0 = s.lvl
		sg := sig()
		sg.Noise, sg.SNRdB = true, s.snr
		cs = append(cs, mkCase(fmt.Sprintf("%s/%gdB/%gdBm0", CatSNR, s.snr, s.lvl), CatSNR, p.Presses(digits), sg, false))
	}
	// 12 dB SNR at 40 ms: two edges at once.
	{
		p := base
		p.OnMs = 40
		sg := sig()
		sg.Noise, sg.SNRdB = true, 12
		cs = append(cs, mkCase(fmt.Sprintf("%s/12dB/-10dBm0/40ms", CatSNR), CatSNR, p.Presses(digits), sg, false))
	}
	return cs
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
