package wav

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

func sine(rate int, hz, amp float64, n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(math.Round(amp * math.Sin(2*math.Pi*hz*float64(i)/float64(rate))))
	}
	return s
}

// zeroCrossFreq measures a tone's frequency from the times of its
// upward zero crossings (linearly interpolated) between the first and
// last, skipping the filter's edges.
func zeroCrossFreq(s []int16, rate int) float64 {
	first, last, n := -1.0, -1.0, 0
	for i := 100; i+1 < len(s)-100; i++ {
		if s[i] < 0 && s[i+1] >= 0 {
			t := float64(i) + float64(-s[i])/float64(s[i+1]-s[i])
			if first < 0 {
				first = t
			} else {
				n++
			}
			last = t
		}
	}
	return float64(n) * float64(rate) / (last - first)
}

// level is the RMS of s (edges skipped) relative to a sine of peak amp, in dB.
func level(s []int16, amp float64) float64 {
	var sum float64
	s = s[len(s)/10 : len(s)-len(s)/10]
	for _, v := range s {
		sum += float64(v) * float64(v)
	}
	return 10 * math.Log10(sum/float64(len(s))/(amp*amp/2))
}

func TestResampleKeepsFrequency(t *testing.T) {
	for _, rate := range []int{8000, 44100, 48000, 16000, 11025, 22050, 32000, 96000, 192000, 384000, 383999, 7999, 6000} {
		for _, hz := range []float64{697, 1209, 1633} {
			t.Run(fmt.Sprintf("%d/%g", rate, hz), func(t *testing.T) {
				in := sine(rate, hz, 10000, rate) // 1 s
				out, err := To8k(in, rate)
				if err != nil {
					t.Fatal(err)
				}
				if want := (rate*8000 + rate - 1) / rate; len(out) != 8000 && len(out) != want {
					t.Fatalf("%d samples out of 1 s", len(out))
				}
				f := zeroCrossFreq(out, 8000)
				if math.Abs(f-hz) > 0.05 { // detection allows ±1.5 % (18 Hz)
					t.Errorf("%g Hz came out at %.4f Hz", hz, f)
				}
				if l := level(out, 10000); math.Abs(l) > 0.05 {
					t.Errorf("pass-band level %.3f dB", l)
				}
			})
		}
	}
}

func TestResampleIdentityCopies(t *testing.T) {
	in := []int16{1, 2, 3}
	out, err := To8k(in, 8000)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(in, out) {
		t.Fatal(out)
	}
	out[0] = 9
	if in[0] != 1 {
		t.Fatal("identity resample aliases its input")
	}
}

// Everything above 4 kHz must go, above all what would fold into the
// DTMF band (697-1633 Hz from 6.4-7.3 kHz) or onto its harmonics, and
// what each halving on the way would fold onto it (rate/2 ± 697 Hz, …).
func TestResampleRejectsAliases(t *testing.T) {
	for _, rate := range []int{44100, 48000, 16000, 11025, 22050, 32000, 96000} {
		hzs := []float64{4000, 4500, 5000, 6391, 6791, 7303, 7500, 8000 + 941}
		for s := float64(rate) / 2; s > 8000; s /= 2 {
			hzs = append(hzs, s-697, s-1633, s+697, s+1633)
		}
		for k := range 40 { // and a sweep up to rate/2
			hzs = append(hzs, 4500+(float64(rate)/2-4600)*float64(k)/39)
		}
		for _, hz := range hzs {
			if hz >= float64(rate)/2-50 || hz < 4000 {
				continue
			}
			out, _ := To8k(sine(rate, hz, 20000, rate/2), rate)
			limit := -59.0
			if hz < 4500 {
				limit = -6 // the edge itself: the filter is half-way down at 3.6 kHz, fully at 4 kHz
			}
			if l := level(out, 20000); l > limit {
				t.Errorf("%d Hz: %.0f Hz leaks through at %.1f dB", rate, hz, l)
			}
		}
	}
}

// Each halfband rejects 65 dB over all that would fold onto [0, 4 kHz],
// checked on a grid far finer than the design's.
func TestHalfbandRejection(t *testing.T) {
	for _, rate := range []int{22050, 24000, 32000, 44100, 48000, 96000, 192000, 384000, 383999} {
		r, err := NewResampler(rate, 8000)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.halves) == 0 {
			t.Errorf("%d Hz: no halfband stage (%v)", rate, r)
		}
		for _, h := range r.halves {
			c := make([]float64, len(h.c))
			for i, v := range h.c {
				c[i] = float64(v)
			}
			if dc := halfbandResponse(c, 0); math.Abs(dc-1) > 1e-6 {
				t.Errorf("%d Hz, stage at %g Hz: DC gain %g", rate, h.rate, dc)
			}
			stop := (h.rate/2 - 4000) / h.rate
			for k := 0; k <= 10000; k++ {
				f := stop + (0.5-stop)*float64(k)/10000
				if g := -20 * math.Log10(math.Abs(halfbandResponse(c, f))); g < 64.5 {
					t.Fatalf("%d Hz, stage at %g Hz: %.1f dB at %.0f Hz", rate, h.rate, g, f*h.rate)
				}
			}
		}
	}
}

// The stages pay: from 44.1 and 48 kHz they take two halvings and under
// 40 % of the multiply-adds of one filter at the input rate.
func TestResampleStagesSaveWork(t *testing.T) {
	for _, rate := range []int{44100, 48000} {
		r, _ := NewResampler(rate, 8000)
		work := float64(8000 * 2 * r.half)
		in := float64(rate)
		for _, h := range r.halves {
			in /= 2
			work += in * float64(len(h.c)) // one multiply-add a tap pair
		}
		single := float64(8000 * 2 * lastHalf(float64(rate), 8000))
		if len(r.halves) != 2 || work > 0.4*single {
			t.Errorf("%d Hz: %v: %.0f multiply-adds a second, one stage %.0f", rate, r, work, single)
		}
	}
}

func TestResamplePassBand(t *testing.T) {
	for _, hz := range []float64{300, 1000, 2000, 3000, 3200} {
		out, _ := To8k(sine(44100, hz, 10000, 44100/2), 44100)
		if l := level(out, 10000); math.Abs(l) > 0.1 {
			t.Errorf("%g Hz at %.2f dB", hz, l)
		}
	}
}

// Times map exactly: a burst starting at 100 ms starts at sample 800.
func TestResampleKeepsTime(t *testing.T) {
	for _, rate := range []int{44100, 48000, 11025, 6000} {
		in := make([]int16, rate/2)
		on := rate / 10
		copy(in[on:], sine(rate, 1000, 10000, rate/10))
		out, _ := To8k(in, rate)
		onset := -1
		for i, v := range out {
			if v > 2500 || v < -2500 {
				onset = i
				break
			}
		}
		if onset < 799 || onset > 803 { // first peak of the sine: 1/4 period after 800
			t.Errorf("%d Hz: burst at output %d, want ≈800", rate, onset)
		}
	}
}

// Piece by piece gives the same result as all at once.
func TestResampleAtPieces(t *testing.T) {
	for _, rate := range []int{44100, 48000, 383999, 8000, 6000} {
		in := sine(rate, 1209, 12000, rate/5)
		r, err := NewResampler(rate, 8000)
		if err != nil {
			t.Fatal(err)
		}
		whole := r.Resample(in)
		pieces := make([]int16, len(whole)+50)
		for i := 0; i < len(pieces); i += 333 {
			r.ResampleAt(pieces[i:min(i+333, len(pieces))], in, i)
		}
		if !slices.Equal(whole, pieces[:len(whole)]) {
			t.Errorf("%d Hz: pieces differ", rate)
		}
		for _, v := range pieces[len(whole):] {
			if v != 0 {
				t.Fatalf("%d Hz: nonzero past the end", rate)
			}
		}
	}
}

// A window covering InputSpan gives what the whole signal gives, so a
// recording can be decoded a piece at a time. The windows are exactly the
// span: one too narrow would miss taps and differ.
func TestResampleWindow(t *testing.T) {
	for _, rate := range []int{44100, 48000, 22050, 16000, 8000, 6000, 383999} {
		in := sine(rate, 1209, 12000, rate/3)
		r, err := NewResampler(rate, 8000)
		if err != nil {
			t.Fatal(err)
		}
		whole := r.Resample(in)
		for _, piece := range []int{1, 333, 8000} {
			got := make([]int16, len(whole)+40)
			for i := 0; i < len(got); i += piece {
				n := min(piece, len(got)-i)
				from, to := r.InputSpan(i, n)
				a, b := max(from, 0), min(to, len(in))
				var win []int16
				if a < b {
					win = in[a:b]
				}
				r.ResampleWindow(got[i:i+n], win, a, len(in), i)
			}
			if !slices.Equal(whole, got[:len(whole)]) {
				t.Errorf("%d Hz, pieces of %d: differ from the whole", rate, piece)
			}
			for _, v := range got[len(whole):] {
				if v != 0 {
					t.Fatalf("%d Hz: nonzero past the end", rate)
				}
			}
		}
	}
}

func TestResampleClips(t *testing.T) {
	// A full-scale step overshoots after filtering (Gibbs): saturate, no wrap.
	in := make([]int16, 4410)
	for i := range in {
		in[i] = -32768
		if i >= 2205 {
			in[i] = 32767
		}
	}
	out, _ := To8k(in, 44100)
	for i, v := range out {
		switch {
		case i < 400-3 && i > 50 && v > -30000, i > 400+3 && i < len(out)-50 && v < 30000:
			t.Fatalf("sample %d = %d", i, v)
		}
	}
}

func TestResamplerErrors(t *testing.T) {
	for _, r := range [][2]int{{999, 8000}, {8000, 384001}, {0, 8000}, {-8000, 8000}} {
		if _, err := NewResampler(r[0], r[1]); err == nil {
			t.Errorf("%v accepted", r)
		}
	}
	if out, _ := To8k(nil, 44100); len(out) != 0 {
		t.Error(out)
	}
}

func BenchmarkDecodeResample(b *testing.B) {
	const seconds = 10
	for _, f := range []Format{
		NewFormat(ULaw, 8000, 1), NewFormat(PCM, 8000, 2), NewFormat(PCM, 16000, 1),
		NewFormat(PCM, 44100, 2), NewFormat(PCM, 48000, 1),
	} {
		b.Run(fmt.Sprintf("%s/%dHz/%dch", f.Encoding, f.Rate, f.Channels), func(b *testing.B) {
			ch := make([][]int16, f.Channels)
			for c := range ch {
				ch[c] = sine(f.Rate, 1209, 8000, seconds*f.Rate)
			}
			a, err := New(f, ch)
			if err != nil {
				b.Fatal(err)
			}
			r, _ := NewResampler(f.Rate, 8000)
			b.SetBytes(int64(len(a.Data)))
			b.ResetTimer()
			for b.Loop() {
				for c := range f.Channels {
					_ = r.Resample(a.Channel(c))
				}
			}
			b.ReportMetric(float64(seconds)*float64(b.N)/b.Elapsed().Seconds(), "x_realtime")
		})
	}
}

// BenchmarkResample measures the resampler alone, to 8 kHz, in the
// one-second pieces the scanner asks for; ns/out is per output sample.
//
//	go test ./dtmf/wav -run '^$' -bench Resample -benchmem
func BenchmarkResample(b *testing.B) {
	const seconds = 10
	for _, rate := range []int{11025, 16000, 22050, 44100, 48000, 96000} {
		r, err := NewResampler(rate, 8000)
		if err != nil {
			b.Fatal(err)
		}
		src := sine(rate, 1209, 8000, seconds*rate)
		dst := make([]int16, r.OutLen(len(src)))
		b.Run(fmt.Sprintf("%dHz", rate), func(b *testing.B) {
			for b.Loop() {
				for i := 0; i < len(dst); i += 8000 {
					r.ResampleAt(dst[i:min(i+8000, len(dst))], src, i)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(dst)), "ns/out")
			b.ReportMetric(float64(seconds)*float64(b.N)/b.Elapsed().Seconds(), "x_realtime")
		})
	}
}
