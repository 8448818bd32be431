package wav

import (
	"math"
	"sync"
)

// halfband is a decimate-by-2 low-pass whose even taps, but the centre's
// 1/2, are zero: y[k] = x[2k]/2 + Σ c[i]·(x[2k-(2i+1)] + x[2k+(2i+1)]).
// Only its odd taps cost work, and half of those by symmetry.
type halfband struct {
	rate float64   // input rate, Hz
	c    []float32 // the odd taps, from the centre out
}

// halfbandRejection is the least a halfband rejects over its stop-band:
// more than the Resampler's 60 dB, so that aliases from every stage stay
// below it together.
const halfbandRejection = 65.0

// halfbandSizes are the lengths tried, in odd taps each side; 2, 4 and 8
// have unrolled loops.
var halfbandSizes = []int{1, 2, 4, 8, 12, 16, 24, 32}

// halfbands caches designs by [rate, to]: a design takes a few
// milliseconds, and a scan makes a Resampler per file.
var halfbands sync.Map

// newHalfband designs the shortest halfband from rate to rate/2 that
// keeps [0, to/2] free of aliases: its stop-band starts at rate/2 - to/2
// (all that folds onto [0, to/2]) and rejects at least halfbandRejection
// there. Halfbands are symmetric about rate/4, so the pass-band ripple up
// to to/2 is the stop-band's: 65 dB is 0.005 dB. It reports false when
// no size up to the largest reaches that.
func newHalfband(rate, to float64) (halfband, bool) {
	key := [2]float64{rate, to}
	if h, ok := halfbands.Load(key); ok {
		return h.(halfband), true
	}
	stop := (rate/2 - to/2) / rate // cycles per sample
	if stop <= 0.25 {
		return halfband{}, false
	}
	for _, n := range halfbandSizes {
		// The Kaiser window's shape β that rejects most: coarsely, then
		// finely around the best, as the optimum is a sharp peak.
		var best []float64
		bestRej, bestBeta := 0.0, 0.0
		try := func(beta float64) {
			c := halfbandTaps(n, beta)
			if r := halfbandRejectionOf(c, stop); r > bestRej {
				best, bestRej, bestBeta = c, r, beta
			}
		}
		for beta := 1.0; beta <= 12; beta += 0.25 {
			try(beta)
		}
		for beta := bestBeta - 0.25; beta <= bestBeta+0.25; beta += 0.01 {
			try(beta)
		}
		if bestRej >= halfbandRejection {
			h := halfband{rate: rate, c: make([]float32, n)}
			for i, v := range best {
				h.c[i] = float32(v)
			}
			halfbands.Store(key, h)
			return h, true
		}
	}
	return halfband{}, false
}

// halfbandTaps is the ideal halfband (sinc) under a Kaiser window of shape
// beta, n odd taps each side, scaled to unity gain at DC. The centre stays
// exactly 1/2, which puts the response at rate/2 at exactly zero.
func halfbandTaps(n int, beta float64) []float64 {
	span := float64(2 * n) // the window reaches zero one sample past the last tap
	i0beta := bessel0(beta)
	c := make([]float64, n)
	var sum float64
	for i := range c {
		x := float64(2*i + 1)
		u := x / span
		c[i] = 0.5 * sinc(x/2) * bessel0(beta*math.Sqrt(1-u*u)) / i0beta
		sum += c[i]
	}
	for i := range c {
		c[i] *= 0.25 / sum
	}
	return c
}

// halfbandResponse is the gain of taps c at f cycles per sample.
func halfbandResponse(c []float64, f float64) float64 {
	h := 0.5
	for i, v := range c {
		h += 2 * v * math.Cos(2*math.Pi*f*float64(2*i+1))
	}
	return h
}

// halfbandRejectionOf is the least rejection, in dB, of taps c from stop
// to 1/2 cycle per sample, on a grid of some 32 points per ripple.
func halfbandRejectionOf(c []float64, stop float64) float64 {
	points := 32*len(c) + 16
	worst := math.Inf(1)
	for k := 0; k <= points; k++ {
		f := stop + (0.5-stop)*float64(k)/float64(points)
		g := math.Abs(halfbandResponse(c, f))
		worst = math.Min(worst, -20*math.Log10(max(g, 1e-12)))
	}
	return worst
}

// reach is how far the filter looks either side of its centre, in input
// samples.
func (h *halfband) reach() int { return 2*len(h.c) - 1 }

// decimate fills y with x filtered and halved: y[k] is centred on
// x[2k+reach], so x must hold 2·len(y)+2·reach-1 samples.
func (h *halfband) decimate(y, x []float32) {
	switch c := h.c; len(c) {
	case 2:
		decimate2(y, x, (*[2]float32)(c))
	case 4:
		decimate4(y, x, (*[4]float32)(c))
	case 8:
		decimate8(y, x, (*[8]float32)(c))
	default:
		reach := h.reach()
		for k := range y {
			w := x[2*k : 2*k+2*reach+1]
			l, r := w[:reach], w[reach+1:]
			s := 0.5 * w[reach]
			for i, ci := range c {
				s += ci * (l[reach-1-2*i] + r[2*i])
			}
			y[k] = s
		}
	}
}

// The unrolled loops: one bounds check an output, coefficients in
// registers, two partial sums to shorten the chain of additions.

func decimate2(y, x []float32, c *[2]float32) {
	c0, c1 := c[0], c[1]
	for k := range y {
		w := (*[7]float32)(x[2*k:])
		y[k] = (0.5*w[3] + c1*(w[0]+w[6])) + c0*(w[2]+w[4])
	}
}

func decimate4(y, x []float32, c *[4]float32) {
	c0, c1, c2, c3 := c[0], c[1], c[2], c[3]
	for k := range y {
		w := (*[15]float32)(x[2*k:])
		s0 := 0.5*w[7] + c1*(w[4]+w[10]) + c3*(w[0]+w[14])
		s1 := c0*(w[6]+w[8]) + c2*(w[2]+w[12])
		y[k] = s0 + s1
	}
}

func decimate8(y, x []float32, c *[8]float32) {
	c0, c1, c2, c3, c4, c5, c6, c7 := c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
	for k := range y {
		w := (*[31]float32)(x[2*k:])
		s0 := 0.5*w[15] + c1*(w[12]+w[18]) + c3*(w[8]+w[22]) + c5*(w[4]+w[26]) + c7*(w[0]+w[30])
		s1 := c0*(w[14]+w[16]) + c2*(w[10]+w[20]) + c4*(w[6]+w[24]) + c6*(w[2]+w[28])
		y[k] = s0 + s1
	}
}
