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
// DTMF band (697-1633 Hz from 6.4-7.3 kHz) or onto its harmonics.
func TestResampleRejectsAliases(t *testing.T) {
	for _, rate := range []int{44100, 48000, 16000, 11025, 22050} {
		for _, hz := range []float64{4000, 4500, 5000, 6391, 6791, 7303, 7500, 8000 + 941} {
			if hz >= float64(rate)/2 {
				continue
			}
			t.Run(fmt.Sprintf("%d/%g", rate, hz), func(t *testing.T) {
				out, _ := To8k(sine(rate, hz, 20000, rate/2), rate)
				limit := -59.0
				if hz == 4000 {
					limit = -6 // the edge itself: the filter is half-way down at 3.6 kHz, fully at 4 kHz
				}
				if l := level(out, 20000); l > limit {
					t.Errorf("%g Hz leaks through at %.1f dB", hz, l)
				}
			})
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
