package wav

import (
	"fmt"
	"math"
	"strings"
	"sync"
)

// Resampler converts linear PCM from one sample rate to another. Its
// response is a Kaiser-windowed sinc low-pass: -6 dB at 45 % of the lower
// rate, 60 dB down from its Nyquist frequency on; for 8 kHz output, flat
// to about 3.2 kHz, -6 dB at 3.6 kHz, ≥ 60 dB rejection from 4 kHz.
//
// Downsampling by 2.5 or more is done in stages, because the steep filter
// costs taps in proportion to the rate it runs at: halfband decimators
// first halve the rate, each only as steep as keeping aliases out of the
// output band needs (a few taps, half of them zero, 65 dB rejection, under
// 0.005 dB of ripple), then a polyphase filter makes the last, fractional
// step at the lowest rate. 44.1 kHz to 8 kHz takes 44.1 → 22.05 → 11.025
// → 8 kHz and about a third of the multiply-adds of one filter.
//
// Output sample n sits exactly at input time n·from/to: positions are kept
// in exact integer arithmetic, so a tone keeps its frequency exactly and
// events keep their times (every stage is linear-phase and centred, with
// no delay). A Resampler is safe for concurrent use.
type Resampler struct {
	from, to int
	outL     int64 // to/gcd(from, to): OutLen counts in these
	outM     int64

	halves []halfband // run first, in order

	// The last stage: output n sits at position n·m/l of its input (the
	// output of the last halfband, or the input).
	l, m   int64
	half   int // taps each side of the centre; 2·half taps in all
	phases int // rows in table
	table  []float32

	scratch sync.Pool // *scratch: per-call buffers, reused
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
	r := &Resampler{from: from, to: to, outL: int64(to / g), outM: int64(from / g)}
	r.scratch.New = func() any { return new(scratch) }
	if from == to {
		return r, nil
	}
	// Halve while it saves work: the last stage's taps scale with the rate
	// it runs at.
	rate := float64(from)
	for to < from {
		h, ok := newHalfband(rate, float64(to))
		if !ok {
			break
		}
		hbCost := rate / 2 * (1.5*float64(len(h.c)) + 1) // an add, a multiply-add per tap pair
		if hbCost+lastCost(rate/2, to) >= lastCost(rate, to) {
			break
		}
		r.halves = append(r.halves, h)
		rate /= 2
	}
	k := int64(1) << len(r.halves)
	gl := gcd64(int64(from), int64(to)*k)
	r.l, r.m = int64(to)*k/gl, int64(from)/gl

	low := float64(min(from, to))
	fc := cutoffFrac * low / rate // cutoff in cycles per input sample of this stage
	r.half = lastHalf(rate, low)
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

// kaiserOrder is Kaiser's estimate of the filter order for a stop-band
// rejection of atten dB and a transition tw cycles per sample wide.
func kaiserOrder(atten, tw float64) float64 { return (atten - 7.95) / (2.285 * 2 * math.Pi * tw) }

// lastHalf is the last stage's taps each side of the centre at rate.
func lastHalf(rate, low float64) int {
	tw := (0.5 - cutoffFrac) * 2 * low / rate
	return int(math.Ceil(kaiserOrder(attenuation, tw)/2)) + 1
}

// lastCost is the last stage's work per second of output: one
// multiply-add per tap.
func lastCost(rate float64, to int) float64 {
	return float64(to) * float64(2*lastHalf(rate, float64(to)))
}

// From and To are the input and output rates.
func (r *Resampler) From() int { return r.from }
func (r *Resampler) To() int   { return r.to }

// String describes the stages, for benchmarks and logs.
func (r *Resampler) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d Hz", r.from)
	if r.from == r.to {
		return b.String() + " (copy)"
	}
	rate := float64(r.from)
	for _, h := range r.halves {
		rate /= 2
		fmt.Fprintf(&b, " → %g Hz (halfband, %d taps)", rate, 2*h.reach()+1)
	}
	fmt.Fprintf(&b, " → %d Hz (polyphase, %d taps, %d phases)", r.to, 2*r.half, r.phases)
	return b.String()
}

// OutLen is the length of the resampled version of n input samples: every
// output sample whose time falls inside the input.
func (r *Resampler) OutLen(n int) int {
	if n <= 0 {
		return 0
	}
	return int((int64(n)*r.outL + r.outM - 1) / r.outM)
}

// Resample resamples all of src.
func (r *Resampler) Resample(src []int16) []int16 {
	out := make([]int16, r.OutLen(len(src)))
	r.ResampleAt(out, src, 0)
	return out
}

// scratch holds one call's buffers: the input as float32 and each
// halfband's output.
type scratch struct {
	bufs   [][]float32
	lo, hi []int64 // the range of each stage's input a block needs
}

func (s *scratch) buf(i, n int) []float32 {
	for len(s.bufs) <= i {
		s.bufs = append(s.bufs, nil)
	}
	if cap(s.bufs[i]) < n {
		s.bufs[i] = make([]float32, n)
	}
	return s.bufs[i][:n]
}

// block is how many outputs are computed together; each block recomputes
// the few intermediate samples it shares with its neighbours.
const block = 2048

// ResampleAt fills dst with output samples first, first+1, … of src
// resampled (samples past the end of the output are zero), so a long
// signal can be resampled piece by piece with the same result as all at
// once. Input outside src counts as silence.
func (r *Resampler) ResampleAt(dst, src []int16, first int) {
	r.ResampleWindow(dst, src, 0, len(src), first)
}

// InputSpan is the input samples [from, to) that output samples first, …,
// first+n-1 are computed from; from may be negative and to past the
// input's end (silence there).
func (r *Resampler) InputSpan(first, n int) (from, to int) {
	if r.from == r.to || n <= 0 {
		return first, first + max(n, 0)
	}
	lo := int64(first)*r.m/r.l - int64(r.half) + 1
	hi := int64(first+n-1)*r.m/r.l + int64(r.half) + 1
	for k := len(r.halves) - 1; k >= 0; k-- {
		reach := int64(r.halves[k].reach())
		lo, hi = 2*lo-reach, 2*hi+reach
	}
	return int(lo), int(hi) + 1
}

// ResampleWindow is ResampleAt for a signal of inLen samples of which only
// a window is at hand: win holds input samples winStart, winStart+1, ….
// Outside the window the input counts as silence, so the result equals
// ResampleAt's on the whole signal when the window covers InputSpan(first,
// len(dst)). A long recording can so be decoded, resampled and analysed a
// piece at a time.
func (r *Resampler) ResampleWindow(dst, win []int16, winStart, inLen, first int) {
	// The part of the signal at hand: [a, b) of the input.
	a, b := max(winStart, 0), min(winStart+len(win), inLen)
	if r.from == r.to {
		clear(dst)
		if c0, c1 := max(first, a), min(first+len(dst), b); c0 < c1 {
			copy(dst[c0-first:c1-first], win[c0-winStart:c1-winStart])
		}
		return
	}
	s := r.scratch.Get().(*scratch)
	defer r.scratch.Put(s)
	outEnd := int64(r.OutLen(inLen))
	// lo[k], hi[k]: the range of stage k's input that the block needs
	// (stage len(r.halves) is the last one).
	nst := len(r.halves)
	if len(s.lo) != nst+1 {
		s.lo, s.hi = make([]int64, nst+1), make([]int64, nst+1)
	}
	lo, hi := s.lo, s.hi
	for start := 0; start < len(dst); start += block {
		end := min(start+block, len(dst))
		n0 := max(int64(first+start), 0)
		n1 := min(int64(first+end), outEnd) - 1
		if n1 < n0 {
			clear(dst[start:end])
			continue
		}
		// From the first tap of n0 to the last tap of n1 (one more for a
		// phase rounded up), then back through the halfbands.
		lo[nst] = n0*r.m/r.l - int64(r.half) + 1
		hi[nst] = n1*r.m/r.l + int64(r.half) + 1
		for k := nst - 1; k >= 0; k-- {
			reach := int64(r.halves[k].reach())
			lo[k] = 2*lo[k+1] - reach
			hi[k] = 2*hi[k+1] + reach
		}
		x := s.buf(0, int(hi[0]-lo[0]+1))
		// Input [xa, xb) lands in x[xa-lo:xb-lo]; silence around it.
		xa, xb := max(lo[0], int64(a)), min(hi[0]+1, int64(b))
		xb = max(xa, xb)
		clear(x[:xa-lo[0]])
		clear(x[xb-lo[0]:])
		in := x[xa-lo[0] : xb-lo[0]]
		for j, v := range win[xa-int64(winStart) : xb-int64(winStart)] {
			in[j] = float32(v)
		}
		for k := range r.halves {
			y := s.buf(k+1, int(hi[k+1]-lo[k+1]+1))
			r.halves[k].decimate(y, x)
			x = y
		}
		o0, o1 := int(n0)-first, int(n1)-first
		clear(dst[start:o0])
		clear(dst[o1+1 : end])
		r.last(dst[o0:o1+1], x, n0, lo[nst])
	}
}

// last runs the polyphase stage: dst[k] is output n0+k, x starts at
// position x0 of the stage's input.
func (r *Resampler) last(dst []int16, x []float32, n0, x0 int64) {
	width := 2 * r.half
	// Position n·m/l = i + p/l, stepped by m/l = q + f/l rather than
	// divided afresh: a 64-bit division costs as much as 20 taps.
	num := n0 * r.m
	i, p := num/r.l, num%r.l
	q, f := r.m/r.l, r.m%r.l
	exact := int64(r.phases) == r.l
	for k := range dst {
		ii, pp := i, p
		if !exact {
			pp = (p*int64(r.phases) + r.l/2) / r.l
			if pp == int64(r.phases) {
				ii++
				pp = 0
			}
		}
		j := int(ii - int64(r.half) + 1 - x0)
		dst[k] = sat16(dot(r.table[int(pp)*width:int(pp+1)*width], x[j:j+width]))
		i, p = i+q, p+f
		if p >= r.l {
			i, p = i+1, p-r.l
		}
	}
}

func dot(h, x []float32) float32 {
	x = x[:len(h)]
	var s0, s1, s2, s3 float32
	// Array pointers: one bounds check per eight taps, not one per tap.
	for len(h) >= 8 {
		a, b := (*[8]float32)(h), (*[8]float32)(x)
		s0 += a[0]*b[0] + a[4]*b[4]
		s1 += a[1]*b[1] + a[5]*b[5]
		s2 += a[2]*b[2] + a[6]*b[6]
		s3 += a[3]*b[3] + a[7]*b[7]
		h, x = h[8:], x[8:]
	}
	for i, v := range h {
		s0 += v * x[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// sat16 rounds half away from zero and saturates.
func sat16(v float32) int16 {
	switch {
	case v >= math.MaxInt16:
		return math.MaxInt16
	case v <= math.MinInt16:
		return math.MinInt16
	case v < 0:
		return int16(v - 0.5)
	}
	return int16(v + 0.5)
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

func gcd64(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
