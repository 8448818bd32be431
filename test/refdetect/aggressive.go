package refdetect

import "math"

// The eight DTMF frequencies (ITU-T Q.23).
var (
	lowGroup  = [4]float64{697, 770, 852, 941}
	highGroup = [4]float64{1209, 1336, 1477, 1633}
	keypad    = [4][4]byte{
		{'1', '2', '3', 'A'},
		{'4', '5', '6', 'B'},
		{'7', '8', '9', 'C'},
		{'*', '0', '#', 'D'},
	}
)

// zeroDBm0Peak is the 16-bit peak of a 0 dBm0 sine: full scale is
// +3.14 dBm0 (ITU-T G.711). Kept here so this package stays independent of
// package dtmf.
var zeroDBm0Peak = 32767 / math.Pow(10, 3.14/20)

// sinePower returns the mean power (in 16-bit units squared) of a sine at
// dbm0.
func sinePower(dbm0 float64) float64 {
	a := zeroDBm0Peak * math.Pow(10, dbm0/20)
	return a * a / 2
}

// AggressiveConfig parameterises the aggressive detector. The zero value
// is not useful; start from DefaultAggressive.
type AggressiveConfig struct {
	// Window and Hop are the analysis window and its step, in samples.
	Window, Hop int
	// FloorDBm0 is the absolute level each of the two tones must reach
	// (level of the fitted sine, dBm0).
	FloorDBm0 float64
	// MinShare is the share of the window's energy that the two fitted
	// tones must hold together (0-1).
	MinShare float64
	// DeviationsPct are the frequency offsets, in percent, probed around
	// each DTMF frequency.
	DeviationsPct []float64
	// MaxLevelDiffDB is the largest level difference between the two
	// fitted tones for the pair to count as two tones. It is a guard
	// against the leakage of one loud single tone, not a twist check: it
	// sits far beyond Q.24's 4 dB / 8 dB twist limits.
	MaxLevelDiffDB float64
}

// DefaultAggressive is the configuration Aggressive uses: 10 ms windows
// (80 samples) every 5 ms, no minimum duration, no twist check, a -40 dBm0
// floor per tone and a 0.90 energy share.
//
// Per window: Goertzel (rectangular window) at each DTMF frequency and at
// ±2.5 % and ±5 % around it, so tones far off frequency still register
// (the probes of one group cover 662-988 Hz and 1148-1715 Hz without
// gaps); the strongest probe of the low group and of the high group are
// then fitted jointly by least squares (two sines), which gives each tone's
// level and the share of the window's energy the pair explains (0-1). A
// window is a hit when both fitted tones reach FloorDBm0, the pair holds
// at least MinShare, and the two tones are within MaxLevelDiffDB (20 dB).
// The joint fit and that last guard keep the spectral leakage of one loud
// single tone (a whistle, a masking beep), which shows up 25-30 dB down in
// the other group, from posing as the second tone; Q.24's twist limits are
// 4 and 8 dB, so no real digit comes near the guard.
//
// MinShare was set by measurement (TestAggressiveCalibration with
// TONEVAULT_MEASURE=1). For every press of every Q24Cases case the best
// window's share is at least 0.944 (lowest: 12 dB SNR, and ±1.5 % / ±3.5 %
// deviation of both tones; clean nominal tones score 0.99-1.00). On the
// talk-off set (1 h 04 min, 763,000 windows) the number of windows
// passing floor and guard by share was:
//
//	share     ≥0.80  ≥0.85  ≥0.88  ≥0.90  ≥0.93  ≥0.95
//	speech      331    112     51     28     14      3   (44 min)
//	music       333    212    155     89     23     12   (18 min)
//	synthetic     4      0      0      0      0      0
//
// At 0.90 the speech windows come almost all from one recording of
// screaming monkeys (Asterisk's tt-monkeys prompt); Aggressive reports 20
// hits on speech (18 there, 1 in espeak-ng German), 39 on music on hold
// and none on the synthetic set or on any OverSpeech speech bed.
var DefaultAggressive = AggressiveConfig{
	Window: 80, Hop: 40, FloorDBm0: -40, MinShare: 0.9, MaxLevelDiffDB: 20,
	DeviationsPct: []float64{-5, -2.5, 0, 2.5, 5},
}

// Aggressive runs DefaultAggressive over pcm (8 kHz mono). Consecutive hit
// windows of the same digit are merged into one Hit, whose Sample is the
// first sample of the first window. It finds every press of every
// Q24Cases case, those a compliant detector must reject included (20 and
// 23 ms, ±3.5 % and ±5 % deviation) and those beyond the twist limits. It
// is a leak detector, not a digit decoder: a tone cut by a drop-out comes
// out as two hits, and a tone far off frequency (or under speech) may flip
// between neighbouring digits and come out as several.
func Aggressive(pcm []int16) []Hit { return DefaultAggressive.Detect(pcm) }

// Window is the analysis of one window.
type Window struct {
	Start int64   // first sample
	Digit byte    // digit of the fitted low and high tones
	Low   float64 // level of the fitted low-group tone, dBm0
	High  float64 // level of the fitted high-group tone, dBm0
	Share float64 // share of the window's energy the two tones explain, 0-1
	Hit   bool    // both tones reach the floor and the share reaches MinShare
}

// Detect runs the detector with c and merges hit windows into hits.
func (c AggressiveConfig) Detect(pcm []int16) []Hit {
	var hits []Hit
	var prev byte
	c.scan(pcm, func(w Window) {
		if !w.Hit {
			prev = 0
			return
		}
		if w.Digit != prev {
			hits = append(hits, Hit{Digit: w.Digit, Sample: w.Start})
		}
		prev = w.Digit
	})
	return hits
}

// Windows returns the analysis of every window (for calibration and
// diagnostics).
func (c AggressiveConfig) Windows(pcm []int16) []Window {
	var ws []Window
	c.scan(pcm, func(w Window) { ws = append(ws, w) })
	return ws
}

// probe is one Goertzel frequency: a DTMF tone, possibly deviated.
type probe struct {
	coef     float64   // 2 cos(ω)
	tone     int       // 0-3 low group, 4-7 high group
	cos, sin []float64 // basis over one window, for the joint fit
}

func (c AggressiveConfig) probes() []probe {
	devs := c.DeviationsPct
	if len(devs) == 0 {
		devs = []float64{0}
	}
	var ps []probe
	for k := 0; k < 8; k++ {
		f := lowGroup[k%4]
		if k >= 4 {
			f = highGroup[k-4]
		}
		for _, d := range devs {
			w := 2 * math.Pi * f * (1 + d/100) / SampleRate
			p := probe{coef: 2 * math.Cos(w), tone: k, cos: make([]float64, c.Window), sin: make([]float64, c.Window)}
			for i := range p.cos {
				p.cos[i] = math.Cos(w * float64(i))
				p.sin[i] = math.Sin(w * float64(i))
			}
			ps = append(ps, p)
		}
	}
	return ps
}

func (c AggressiveConfig) scan(pcm []int16, emit func(Window)) {
	n := c.Window
	if n <= 0 || c.Hop <= 0 {
		panic("refdetect: AggressiveConfig needs a positive Window and Hop")
	}
	ps := c.probes()
	floor := sinePower(c.FloorDBm0)
	x := make([]float64, n)
	grams := map[[2]int][4][4]float64{} // Gram matrix per probe pair
	for start := 0; start+n <= len(pcm); start += c.Hop {
		var energy float64
		for i, v := range pcm[start : start+n] {
			x[i] = float64(v)
			energy += x[i] * x[i]
		}
		w := Window{Start: int64(start), Low: math.Inf(-1), High: math.Inf(-1), Digit: keypad[0][0]}
		if energy/float64(n) < floor/2 {
			// Too weak for two tones at the floor: the fitted tones' powers
			// add up to about the window's mean power at most.
			emit(w)
			continue
		}
		// Strongest probe per group by Goertzel power |X(ω)|².
		bestL, bestH := -1, -1
		var powL, powH float64
		for i := range ps {
			p := &ps[i]
			var s1, s2 float64
			for _, v := range x {
				s0 := v + p.coef*s1 - s2
				s2 = s1
				s1 = s0
			}
			m := s1*s1 + s2*s2 - p.coef*s1*s2
			if p.tone < 4 && (bestL < 0 || m > powL) {
				bestL, powL = i, m
			}
			if p.tone >= 4 && (bestH < 0 || m > powH) {
				bestH, powH = i, m
			}
		}
		pl, ph := &ps[bestL], &ps[bestH]
		w.Digit = keypad[pl.tone][ph.tone-4]
		// Joint least-squares fit of two sines at the chosen probes.
		basis := [4][]float64{pl.cos, pl.sin, ph.cos, ph.sin}
		var r [4]float64
		for a := 0; a < 4; a++ {
			for i, v := range x {
				r[a] += v * basis[a][i]
			}
		}
		key := [2]int{bestL, bestH}
		g, ok := grams[key]
		if !ok {
			for a := 0; a < 4; a++ {
				for b := a; b < 4; b++ {
					var s float64
					for i := range x {
						s += basis[a][i] * basis[b][i]
					}
					g[a][b], g[b][a] = s, s
				}
			}
			grams[key] = g
		}
		coef, ok := solve4(g, r)
		if ok {
			fitted := coef[0]*r[0] + coef[1]*r[1] + coef[2]*r[2] + coef[3]*r[3]
			lowPow := (coef[0]*coef[0] + coef[1]*coef[1]) / 2
			highPow := (coef[2]*coef[2] + coef[3]*coef[3]) / 2
			w.Low, w.High = powerDBm0(lowPow), powerDBm0(highPow)
			w.Share = fitted / energy
			w.Hit = lowPow >= floor && highPow >= floor && w.Share >= c.MinShare &&
				math.Abs(w.Low-w.High) <= c.MaxLevelDiffDB
		}
		emit(w)
	}
}

// solve4 solves g·c = r by Gaussian elimination with partial pivoting.
func solve4(g [4][4]float64, r [4]float64) ([4]float64, bool) {
	var c [4]float64
	for col := 0; col < 4; col++ {
		piv := col
		for row := col + 1; row < 4; row++ {
			if math.Abs(g[row][col]) > math.Abs(g[piv][col]) {
				piv = row
			}
		}
		if math.Abs(g[piv][col]) < 1e-9 {
			return c, false
		}
		g[col], g[piv] = g[piv], g[col]
		r[col], r[piv] = r[piv], r[col]
		for row := col + 1; row < 4; row++ {
			f := g[row][col] / g[col][col]
			for k := col; k < 4; k++ {
				g[row][k] -= f * g[col][k]
			}
			r[row] -= f * r[col]
		}
	}
	for row := 3; row >= 0; row-- {
		s := r[row]
		for k := row + 1; k < 4; k++ {
			s -= g[row][k] * c[k]
		}
		c[row] = s / g[row][row]
	}
	return c, true
}

// powerDBm0 converts a sine power to dBm0.
func powerDBm0(p float64) float64 {
	if p <= 0 {
		return math.Inf(-1)
	}
	return 10 * math.Log10(p/sinePower(0))
}
