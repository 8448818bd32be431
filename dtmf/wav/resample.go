package wav

import (
	"fmt"
	"math"
)

// Resampler converts linear PCM from one sample rate to another with a
// Kaiser-windowed sinc low-pass (-6 dB at 45 % of the lower rate, 60 dB
// down from its Nyquist frequency on; for 8 kHz output: flat to about
// 3.2 kHz, -6 dB at 3.6 kHz, ≥ 60 dB rejection from 4 kHz).
//
// Output sample n sits exactly at input time n·from/to: positions are kept
// in exact integer arithmetic, so a tone keeps its frequency exactly and
// events keep their times (the filter is linear-phase and centred, with no
// delay). A Resampler holds only its filter table and is safe for
// concurrent use.
type Resampler struct {
	from, to int
	l, m     int64 // to/g and from/g: output n sits at input position n·m/l
	half     int   // taps each side of the centre; 2·half taps in all
	phases   int   // rows in table
	table    []float32
}

// maxTable bounds the filter table (in coefficients); rate pairs that would
// need more phases use the nearest of fewer phases, an error below 2 ns.
const maxTable = 1 << 20

const (
	cutoffFrac  = 0.45 // -6 dB point, as a fraction of the lower rate
	attenuation = 60.0 // stop-band rejection in dB
)

// NewResampler returns a resampler from rate from to rate to (Hz, both in
// MinRate..MaxRate).
func NewResampler(from, to int) (*Resampler, error) {
	for _, r := range []int{from, to} {
		if r < MinRate || r > MaxRate {
			return nil, fmt.Errorf("wav: cannot resample at %d Hz (%d to %d Hz)", r, MinRate, MaxRate)
		}
	}
	g := gcd(from, to)
	r := &Resampler{from: from, to: to, l: int64(to / g), m: int64(from / g)}
	if from == to {
		return r, nil
	}
	low := float64(min(from, to))
	fc := cutoffFrac * low / float64(from) // cutoff in cycles per input sample
	tw := (0.5 - cutoffFrac) * 2 * low / float64(from)
	// Kaiser's estimate of the length for this transition and rejection.
	taps := (attenuation - 7.95) / (2.285 * 2 * math.Pi * tw)
	r.half = int(math.Ceil(taps/2)) + 1
	beta := 0.1102 * (attenuation - 8.7)
	width := 2 * r.half
	r.phases = int(min(r.l, int64(max(1, maxTable/width))))
	r.table = make([]float32, r.phases*width)
	i0beta := bessel0(beta)
	w := make([]float64, width)
	for p := range r.phases {
		frac := float64(p) / float64(r.phases)
		row := r.table[p*width : (p+1)*width]
		var sum float64
		clear(w)
		for j := range w {
			x := float64(j-r.half+1) - frac // tap's distance from the output position, input samples
			u := x / float64(r.half)
			if u <= -1 || u >= 1 {
				continue
			}
			w[j] = 2 * fc * sinc(2*fc*x) * bessel0(beta*math.Sqrt(1-u*u)) / i0beta
			sum += w[j]
		}
		for j := range w {
			row[j] = float32(w[j] / sum) // unity gain at DC for every phase
		}
	}
	return r, nil
}

// From and To are the input and output rates.
func (r *Resampler) From() int { return r.from }
func (r *Resampler) To() int   { return r.to }

// OutLen is the length of the resampled version of n input samples: every
// output sample whose time falls inside the input.
func (r *Resampler) OutLen(n int) int {
	if n <= 0 {
		return 0
	}
	return int((int64(n)*r.l + r.m - 1) / r.m)
}

// Resample resamples all of src.
func (r *Resampler) Resample(src []int16) []int16 {
	out := make([]int16, r.OutLen(len(src)))
	r.ResampleAt(out, src, 0)
	return out
}

// ResampleAt fills dst with output samples first, first+1, … of src
// resampled (samples past the end of the output are zero), so a long
// signal can be resampled piece by piece with the same result as all at
// once. Input outside src counts as silence.
func (r *Resampler) ResampleAt(dst, src []int16, first int) {
	if r.from == r.to {
		n := 0
		if first >= 0 && first < len(src) {
			n = copy(dst, src[first:])
		}
		clear(dst[n:])
		return
	}
	const block = 1024
	var buf []float32
	width := 2 * r.half
	for start := 0; start < len(dst); start += block {
		end := min(start+block, len(dst))
		n0, n1 := int64(first+start), int64(first+end-1)
		// Input samples the block needs: from the first tap of n0 to the
		// last tap of n1 (one more for a phase rounded up).
		i0 := n0*r.m/r.l - int64(r.half) + 1
		i1 := n1*r.m/r.l + int64(r.half) + 1
		need := int(i1 - i0 + 1)
		if cap(buf) < need {
			buf = make([]float32, need)
		}
		buf = buf[:need]
		for k := range buf {
			if i := i0 + int64(k); i >= 0 && i < int64(len(src)) {
				buf[k] = float32(src[i])
			} else {
				buf[k] = 0
			}
		}
		outEnd := int64(r.OutLen(len(src)))
		for o := start; o < end; o++ {
			n := int64(first + o)
			if n < 0 || n >= outEnd {
				dst[o] = 0
				continue
			}
			num := n * r.m
			i := num / r.l
			p := num % r.l
			if int64(r.phases) != r.l {
				p = (p*int64(r.phases) + r.l/2) / r.l
				if p == int64(r.phases) {
					i++
					p = 0
				}
			}
			k := int(i - int64(r.half) + 1 - i0)
			dst[o] = sat16(dot(r.table[int(p)*width:int(p+1)*width], buf[k:k+width]))
		}
	}
}

func dot(h, x []float32) float32 {
	x = x[:len(h)]
	var s0, s1, s2, s3 float32
	j := 0
	for ; j+4 <= len(h); j += 4 {
		s0 += h[j] * x[j]
		s1 += h[j+1] * x[j+1]
		s2 += h[j+2] * x[j+2]
		s3 += h[j+3] * x[j+3]
	}
	for ; j < len(h); j++ {
		s0 += h[j] * x[j]
	}
	return (s0 + s1) + (s2 + s3)
}

func sat16(v float32) int16 {
	v = float32(math.Round(float64(v)))
	switch {
	case v > math.MaxInt16:
		return math.MaxInt16
	case v < math.MinInt16:
		return math.MinInt16
	}
	return int16(v)
}

// Resample converts src from rate from to rate to. Equal rates give a copy.
func Resample(src []int16, from, to int) ([]int16, error) {
	r, err := NewResampler(from, to)
	if err != nil {
		return nil, err
	}
	return r.Resample(src), nil
}

// To8k resamples src at rate Hz to the detector's 8000 Hz.
func To8k(src []int16, rate int) ([]int16, error) { return Resample(src, rate, 8000) }

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// bessel0 is the modified Bessel function of the first kind, order 0.
func bessel0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / (2 * float64(k))) * (x / (2 * float64(k)))
		sum += term
		if term < 1e-12*sum {
			break
		}
	}
	return sum
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
