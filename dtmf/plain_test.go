package dtmf

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/zaf/g711"
)

// The detector and masker take shortcuts for speed: whole sub-blocks
// filtered together, G.711 decoded by table, assembly. These tests run
// them beside the plain way, sample by sample through the Go filters with
// the G.711 library's decoder and no assembly, and require the same state,
// events and output after every packet: a shortcut that changed one answer
// fails here.

// plainFeed feeds x, part of one sub-block, to d the plain way.
func plainFeed(d *Detector, x []float64, out []Event) []Event {
	e := 0.0
	for _, v := range x {
		e += v * v
	}
	d.energy += e
	goertzel8Go(x, &d.s1, &d.s2, &goertzel.coef)
	d.fill += len(x)
	if d.fill == subLen {
		out = d.endSub(&[2][8]float64{d.s1, d.s2}, d.energy, out)
		d.s1, d.s2, d.energy, d.fill = [8]float64{}, [8]float64{}, 0, 0
	}
	return out
}

func plainProcess(d *Detector, pcm []int16, out []Event) []Event {
	for len(pcm) > 0 {
		n := min(subLen-d.fill, len(pcm))
		x := make([]float64, n)
		for i, v := range pcm[:n] {
			x[i] = float64(v)
		}
		out = plainFeed(d, x, out)
		pcm = pcm[n:]
	}
	return out
}

// plainMaskG711 is Masker.G711 the plain way.
func plainMaskG711(m *Masker, in, out []byte, events []Event) []Event {
	decode := g711.DecodeUlawFrame
	if m.codec == PCMA {
		decode = g711.DecodeAlawFrame
	}
	for len(in) > 0 {
		n := min(subLen-m.det.fill, len(in))
		ringPut(m.raw[:], in[:n], m.in)
		x := make([]float64, n)
		for i, b := range in[:n] {
			x[i] = float64(decode(b))
		}
		events = plainFeed(m.det, x, events)
		m.decide(n)
		t0 := m.in - int64(n) - m.delay
		for i := range n {
			t := t0 + int64(i)
			switch {
			case t < 0:
				out[i] = m.encode(0)
			case m.masked(t):
				out[i] = m.maskRaw[t%int64(len(m.maskRaw))]
			default:
				out[i] = m.raw[t&(ringLen-1)]
			}
		}
		in, out = in[n:], out[n:]
	}
	return events
}

// plainMaskPCM is Masker.PCM the plain way.
func plainMaskPCM(m *Masker, in, out []int16, events []Event) []Event {
	for len(in) > 0 {
		n := min(subLen-m.det.fill, len(in))
		x := make([]float64, n)
		for i, v := range in[:n] {
			m.lin[(m.in+int64(i))&(ringLen-1)] = v
			x[i] = float64(v)
		}
		events = plainFeed(m.det, x, events)
		m.decide(n)
		t0 := m.in - int64(n) - m.delay
		for i := range n {
			out[i] = m.outLinear(t0 + int64(i))
		}
		in, out = in[n:], out[n:]
	}
	return events
}

// sameState compares two detectors' state, less the scratch buffers.
func sameState(a, b *Detector) bool {
	x, y := *a, *b
	x.xbuf, x.bst, x.ben, x.tones = y.xbuf, y.bst, y.ben, y.tones
	return x == y
}

// plainInputs are G.711 streams: tones at every edge of the masking tests,
// presses, voice, and random bytes loud and quiet.
func plainInputs(codec Codec) map[string][]byte {
	enc := g711.EncodeUlaw
	if codec == PCMA {
		enc = g711.EncodeAlaw
	}
	in := map[string][]byte{}
	for _, c := range maskEdgeCases() {
		var s signal
		s.silence(30)
		for i := range len(Digits) {
			spec := c.spec
			spec.digit = Digit(Digits[i])
			s.tone(spec)
		}
		if c.snr != 0 {
			s.noise(c.snr, c.spec.lowDB, 3)
		}
		in["tones, "+c.name] = enc(le(s.pcm))
	}
	var p []int16
	for _, b := range [][]byte{benchSignal(), voiceSignal()} {
		pcm := make([]int16, len(b))
		DecodeG711(pcm, b, PCMU)
		p = append(p, pcm...)
	}
	in["presses and voice"] = enc(le(p))
	r := rand.New(rand.NewPCG(9, 10))
	loud, quiet := make([]byte, 8000), make([]int16, 8000)
	for i := range loud {
		loud[i] = byte(r.Uint32())
		quiet[i] = int16(r.IntN(9) - 4)
	}
	var first signal // a press from the first sample on
	first.tone(toneSpec{digit: '5', onMs: 80, offMs: 100, lowDB: -8, highDB: -8})
	in["press at the first sample"] = enc(le(first.pcm))
	in["random bytes"] = loud
	in["quiet noise"] = enc(le(quiet))
	return in
}

// chunkings cut a stream into packets: 20 ms, 30 ms, 10 ms and random.
func chunkings() map[string]func(r *rand.Rand) int {
	return map[string]func(r *rand.Rand) int{
		"160":    func(*rand.Rand) int { return 160 },
		"240":    func(*rand.Rand) int { return 240 },
		"80":     func(*rand.Rand) int { return 80 },
		"random": func(r *rand.Rand) int { return 1 + r.IntN(400) },
	}
}

func TestDetectorMatchesPlain(t *testing.T) {
	for name, in := range plainInputs(PCMU) {
		pcm := make([]int16, len(in))
		DecodeG711(pcm, in, PCMU)
		for cut, size := range chunkings() {
			t.Run(fmt.Sprintf("%s, %s", name, cut), func(t *testing.T) {
				r := rand.New(rand.NewPCG(1, 2))
				d, p := NewDetector(DetectorConfig{}), NewDetector(DetectorConfig{})
				var got, want []Event
				for i := 0; i < len(pcm); {
					j := min(i+size(r), len(pcm))
					got = d.Process(pcm[i:j], got)
					plainly(func() { want = plainProcess(p, pcm[i:j], want) })
					if !sameState(d, p) || fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("samples %d-%d: the detector differs from the plain one (events %v, want %v)", i, j, got, want)
					}
					i = j
				}
				if name == "presses and voice" && len(want) == 0 {
					t.Fatal("no press detected: the comparison saw none")
				}
			})
		}
	}
}

func TestMaskerMatchesPlain(t *testing.T) {
	for _, codec := range []Codec{PCMU, PCMA} {
		for name, in := range plainInputs(codec) {
			for cut, size := range chunkings() {
				t.Run(fmt.Sprintf("codec %d, %s, %s", codec, name, cut), func(t *testing.T) {
					matchPlain(t, MaskConfig{}, codec, in, size, name == "presses and voice", (*Masker).G711, plainMaskG711)
				})
			}
		}
	}
}

// TestMaskerMatchesPlainLongLookAhead: at the longest look-ahead the ring
// holds it and a batch of sub-blocks (the batch goes in before any of it
// leaves).
func TestMaskerMatchesPlainLongLookAhead(t *testing.T) {
	cfg := MaskConfig{LookAhead: 200 * time.Millisecond}
	for name, in := range plainInputs(PCMU) {
		pcm := make([]int16, len(in))
		DecodeG711(pcm, in, PCMU)
		for cut, size := range chunkings() {
			t.Run(fmt.Sprintf("%s, %s", name, cut), func(t *testing.T) {
				tones := name == "presses and voice"
				matchPlain(t, cfg, PCMU, in, size, tones, (*Masker).G711, plainMaskG711)
				matchPlain(t, cfg, Linear16, pcm, size, tones, (*Masker).PCM, plainMaskPCM)
			})
		}
	}
}

func TestMaskerPCMMatchesPlain(t *testing.T) {
	for name, in := range plainInputs(PCMU) {
		pcm := make([]int16, len(in))
		DecodeG711(pcm, in, PCMU)
		for cut, size := range chunkings() {
			t.Run(fmt.Sprintf("%s, %s", name, cut), func(t *testing.T) {
				matchPlain(t, MaskConfig{}, Linear16, pcm, size, name == "presses and voice", (*Masker).PCM, plainMaskPCM)
			})
		}
	}
}

// matchPlain feeds in, cut by size, to a masker through step and to
// another through the plain way, and requires the same output, events,
// counts and detector state after every piece; with tones, that some
// audio was masked, so that the comparison saw one.
func matchPlain[T byte | int16](t *testing.T, cfg MaskConfig, codec Codec, in []T, size func(*rand.Rand) int, tones bool,
	step, plain func(m *Masker, in, out []T, events []Event) []Event) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	m, err := NewMasker(cfg, codec)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := NewMasker(cfg, codec)
	got, want := make([]T, len(in)), make([]T, len(in))
	var gotEv, wantEv []Event
	for i := 0; i < len(in); {
		j := min(i+size(r), len(in))
		gotEv = step(m, in[i:j], got[i:j], gotEv)
		plainly(func() { wantEv = plain(p, in[i:j], want[i:j], wantEv) })
		if !slices.Equal(got[i:j], want[i:j]) || fmt.Sprint(gotEv) != fmt.Sprint(wantEv) ||
			m.span != p.span || m.stats != p.stats || !sameState(m.det, p.det) {
			t.Fatalf("samples %d-%d: the masker differs from the plain one", i, j)
		}
		i = j
	}
	if tones && p.stats.Masked == 0 {
		t.Fatal("nothing masked: the comparison saw no tone")
	}
}

// bestPlain is one group of best2 as first written, with float
// comparisons.
func bestPlain(v *[4]float64) (int, float64) {
	i, a, a2 := 0, v[0], v[1]
	if v[1] > v[0] {
		i, a, a2 = 1, v[1], v[0]
	}
	j, b, b2 := 2, v[2], v[3]
	if v[3] > v[2] {
		j, b, b2 = 3, v[3], v[2]
	}
	if b > a {
		return j, max(a, b2)
	}
	return i, max(b, a2)
}

// TestBestMatchesPlain: best2 picks as the float comparisons do, ties,
// zeros, subnormals and huge powers included.
func TestBestMatchesPlain(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	pick := []float64{0, 5e-324, 1e-300, 0.5, 1, 1, 2, 3e7, 1e300, math.MaxFloat64}
	check := func(v [4]float64) {
		// Each group in turn, the other one random.
		var w [8]float64
		for k := range w {
			w[k] = r.ExpFloat64()
		}
		j, y := bestPlain(&v)
		copy(w[:4], v[:])
		if i, x, _, _ := best2(&w); i != j || x != y {
			t.Fatalf("best2(%v) low = %d, %v; want %d, %v", w, i, x, j, y)
		}
		copy(w[4:], v[:])
		if _, _, i, x := best2(&w); i != j+4 || x != y {
			t.Fatalf("best2(%v) high = %d, %v; want %d, %v", w, i, x, j+4, y)
		}
	}
	// Every arrangement of four picked values, repeats included.
	for n := range len(pick) * len(pick) * len(pick) * len(pick) {
		var v [4]float64
		for k := range v {
			v[k] = pick[n%len(pick)]
			n /= len(pick)
		}
		check(v)
	}
	for range 100000 {
		var v [4]float64
		for k := range v {
			v[k] = r.ExpFloat64() * math.Pow(10, float64(r.IntN(20)))
		}
		check(v)
	}
}
