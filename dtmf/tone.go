package dtmf

import "math"

// Frequencies returns the low-group and high-group frequency of d.
func Frequencies(d Digit) (lo, hi float64, ok bool) {
	for r, row := range keypad {
		for c, k := range row {
			if k == d {
				return toneHz[r], toneHz[4+c], true
			}
		}
	}
	return 0, 0, false
}

// AddTone adds d's two tones, at the given levels in dBm0 per tone, to the
// samples buf of a signal at rate Hz whose first sample has index from, and
// saturates. The phase follows the sample index, so a tone generated in
// pieces is continuous. It reports false for an invalid digit.
func AddTone(buf []int16, rate int, from int64, d Digit, lowDBm0, highDBm0 float64) bool {
	lo, hi, ok := Frequencies(d)
	if !ok {
		return false
	}
	addSine(buf, rate, from, lo, PeakForDBm0(lowDBm0))
	addSine(buf, rate, from, hi, PeakForDBm0(highDBm0))
	return true
}

func addSine(buf []int16, rate int, from int64, hz, peak float64) {
	// The phase is taken modulo the period in whole samples when the rate
	// allows, so long signals do not lose float precision.
	w := 2 * math.Pi * hz / float64(rate)
	for i := range buf {
		n := from + int64(i)
		buf[i] = saturate(float64(buf[i]) + peak*math.Sin(w*float64(n%(int64(rate)*100))))
	}
}

func saturate(v float64) int16 {
	switch {
	case v > math.MaxInt16:
		return math.MaxInt16
	case v < math.MinInt16:
		return math.MinInt16
	}
	return int16(math.Round(v))
}
