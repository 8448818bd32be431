package dtmf

import (
	"math"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestGoertzelAssembly: every assembly version, whichever the processor
// picks, gives the Go filters' results to the bit.
func TestGoertzelAssembly(t *testing.T) {
	type impl struct {
		name string
		f    func(x []float64, s1, s2, c *[8]float64)
	}
	impls := []impl{{"SSE2", goertzel8SSE2}}
	if useAVX {
		impls = append(impls, impl{"AVX", goertzel8AVX})
	} else {
		t.Log("no AVX on this processor: only SSE2 tested")
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, im := range impls {
		for n := range subLen + 1 {
			x := make([]float64, n)
			for i := range x {
				x[i] = ulaw.f[byte(r.Uint32())]
			}
			var a1, a2 [8]float64
			for k := range 8 {
				a1[k] = r.NormFloat64() * 1e4
				a2[k] = r.NormFloat64() * 1e4
			}
			b1, b2 := a1, a2
			im.f(x, &a1, &a2, &goertzel.coef)
			goertzel8Go(x, &b1, &b2, &goertzel.coef)
			if a1 != b1 || a2 != b2 {
				t.Fatalf("%s, %d samples: %v %v, want %v %v", im.name, n, a1, a2, b1, b2)
			}
		}
	}
	// goertzel8Subs without AVX: SSE2 sub-block by sub-block.
	defer func(v bool) { useAVX = v }(useAVX)
	useAVX = false
	var x [batchSubs * subLen]float64
	for i := range x {
		x[i] = float64(int16(r.Uint32()))
	}
	var got, want [batchSubs][2][8]float64
	goertzel8Subs(&x, &got, batchSubs)
	goertzel8SubsGo(&x, &want, batchSubs)
	if got != want {
		t.Fatalf("SSE2, %d sub-blocks: %v, want %v", batchSubs, got, want)
	}
	if !cpu.X86.HasAVX {
		return
	}
	for n := range 120 {
		var x [batchSubs * subLen]float64
		for i := range x {
			x[i] = float64(int16(r.Uint32()))
		}
		var got [batchSubs][2][8]float64
		k := 1 + n%batchSubs
		goertzel8SubsAVX(&x, &got, k, &goertzel.coef)
		for j := range k {
			var s1, s2 [8]float64
			goertzel8Go(x[j*subLen:(j+1)*subLen], &s1, &s2, &goertzel.coef)
			if got[j] != [2][8]float64{s1, s2} {
				t.Fatalf("AVX, %d sub-blocks: sub-block %d %v, want %v %v", k, j, got[j], s1, s2)
			}
		}
	}
}

// plainly runs f with the assembly switched off, so that the Go versions
// run: the plain reference of plain_test.go.
func plainly(f func()) {
	defer func(v bool) { useAVX = v }(useAVX)
	useAVX = false
	f()
}

// TestSpectraAssembly: spectraAVX gives spectraGo's results to the bit:
// the slot's DFT and powers, the long window's, the 12 ms window's and
// the strongest tones of each.
func TestSpectraAssembly(t *testing.T) {
	if !useAVX {
		t.Skip("no AVX on this processor")
	}
	r := rand.New(rand.NewPCG(13, 14))
	check := func(d *Detector, st *[2][8]float64, ref *[2][8]complex128) {
		t.Helper()
		g := *d
		spectraAVX(&g, st, ref)
		spectraGo(d, st, ref)
		if g.subX != d.subX || g.subP != d.subP || g.longY != d.longY || g.longP != d.longP || g.longPk != d.longPk ||
			g.wx != d.wx || g.wamp2 != d.wamp2 || g.wbroad != d.wbroad || g.ampPk != d.ampPk || g.broadPk != d.broadPk {
			t.Fatalf("slot %d, window %v: %v %v %v %v %v, want %v %v %v %v %v", d.slot, d.win,
				g.longP, g.longPk, g.wamp2, g.ampPk, g.broadPk, d.longP, d.longPk, d.wamp2, d.ampPk, d.broadPk)
		}
	}
	d := new(Detector)
	for n := range 2000 {
		var st [2][8]float64
		for j := range longSubs {
			for k := range 8 {
				d.subX[j][k] = complex(r.NormFloat64()*1e6, r.NormFloat64()*1e6)
				d.subP[j][k] = r.ExpFloat64() * 1e12
			}
		}
		for k := range 8 {
			st[0][k], st[1][k] = r.NormFloat64()*1e6, r.NormFloat64()*1e6
			d.longY[k] = complex(r.NormFloat64()*1e8, r.NormFloat64()*1e8)
		}
		d.slot = n % longSubs
		d.win = [winSubs]int{(n + 8) % longSubs, (n + 9) % longSubs, d.slot}
		if n%3 == 0 {
			d.win = [winSubs]int{r.IntN(longSubs), r.IntN(longSubs), r.IntN(longSubs)}
		}
		check(d, &st, &goertzel.ref[n%phases])
	}
	// The picks of every arrangement of four chosen powers in either
	// group, as the wide bins (the other sub-blocks' powers, and the new
	// one's, zero), ties, zeros, subnormals and the largest powers
	// included.
	*d = Detector{slot: 4, win: [winSubs]int{2, 9, 4}}
	pick := []float64{0, 5e-324, 1e-300, 0.5, 1, 1, 2, 3e7, 1e300, math.MaxFloat64}
	for n := range len(pick) * len(pick) * len(pick) * len(pick) {
		for k := range 4 {
			v := pick[n%len(pick)]
			d.subP[9][k], d.subP[9][7-k] = v, v
			n /= len(pick)
		}
		check(d, &[2][8]float64{}, &goertzel.ref[0])
	}
}

// TestGoertzelG711Assembly: the G.711 filters give the Go filters' results
// on the decoded samples, and the samples' energy, to the bit, for one to
// batchSubs sub-blocks.
func TestGoertzelG711Assembly(t *testing.T) {
	if !useAVX {
		t.Skip("no AVX on this processor")
	}
	r := rand.New(rand.NewPCG(17, 18))
	for _, table := range []*g711Table{&ulaw, &alaw} {
		for n := range 120 {
			k := 1 + n%batchSubs
			in := make([]byte, k*subLen)
			for i := range in {
				in[i] = byte(r.Uint32())
			}
			var got [batchSubs][2][8]float64
			var e [batchSubs]float64
			goertzel8SubsG711AVX(in, table, &got, &e, &goertzel.coef)
			for j := range k {
				var x [subLen]float64
				want := g711ToFloat(x[:], in[j*subLen:(j+1)*subLen], table)
				var s1, s2 [8]float64
				goertzel8Go(x[:], &s1, &s2, &goertzel.coef)
				if got[j] != [2][8]float64{s1, s2} || e[j] != want {
					t.Fatalf("%d sub-blocks: sub-block %d %v %v, want %v %v %v", k, j, got[j], e[j], s1, s2, want)
				}
			}
		}
	}
}

// TestToFloatAssembly: toFloatsAVX converts and sums as toFloatsGo does,
// one to batchSubs sub-blocks.
func TestToFloatAssembly(t *testing.T) {
	if !useAVX {
		t.Skip("no AVX on this processor")
	}
	r := rand.New(rand.NewPCG(19, 20))
	for n := range 1000 {
		var src [batchSubs * subLen]int16
		for i := range src {
			switch n % 3 {
			case 0:
				src[i] = int16(r.Uint32())
			case 1: // the extremes: -32768² twice overflows 32 bits
				src[i] = []int16{math.MinInt16, math.MaxInt16, 0, -1}[r.IntN(4)]
			default:
				src[i] = math.MinInt16
			}
		}
		k := 1 + n%batchSubs
		var got, want [batchSubs * subLen]float64
		var eg, ew [batchSubs]float64
		toFloatsAVX(&got, src[:k*subLen], &eg)
		toFloatsGo(&want, src[:k*subLen], &ew)
		if got != want || eg != ew {
			t.Fatalf("%d sub-blocks of %v: %v %v, want %v %v", k, src, got, eg, want, ew)
		}
	}
}

// TestMeasureAssembly: measureAVX measures each lane as measureGo does, to
// the bit, on tones at every offset, noisy, silent and random bins.
func TestMeasureAssembly(t *testing.T) {
	if !useAVX {
		t.Skip("no AVX on this processor")
	}
	r := rand.New(rand.NewPCG(21, 22))
	var subX [longSubs][8]complex128
	var amp2 [8]float64
	held := 0
	for n := range 20000 {
		win := [winSubs]int{r.IntN(longSubs), r.IntN(longSubs), r.IntN(longSubs)}
		for j := range longSubs {
			for k := range 8 {
				subX[j][k] = complex(r.NormFloat64(), r.NormFloat64())
			}
		}
		for k := range 8 {
			// A tone advancing θ a sub-block, under noise of relative
			// level eps: none, slight, heavy, or all noise.
			a, th, ph := math.Pow(10, r.Float64()*12-3), (r.Float64()*2-1)*math.Pi, r.Float64()*2*math.Pi
			if n%7 == 0 {
				th = 0
			}
			eps := []float64{0, 1e-3, 0.3, 3}[r.IntN(4)]
			var sum complex128
			for j, s := range win {
				z := complex(a*math.Cos(ph+float64(j)*th), a*math.Sin(ph+float64(j)*th))
				z += complex(r.NormFloat64()*a*eps, r.NormFloat64()*a*eps)
				if n%11 == 0 && k == 3 {
					z = 0 // silence: no phase
				}
				subX[s][k] = z
				sum += z
			}
			amp2[k] = (real(sum)*real(sum) + imag(sum)*imag(sum)) * (4.0 / (winLen * winLen)) * r.Float64() * 2
		}
		k := [4]int{r.IntN(4), r.IntN(4), 4 + r.IntN(4), 4 + r.IntN(4)}
		if n%5 == 0 {
			k[1] = k[0]
		}
		check := func() {
			t.Helper()
			var got, want tones
			measureAVX(&subX, &win, &amp2, &k, &got)
			measure4Go(&subX, &win, &amp2, &k, &want)
			if got.ok != want.ok {
				t.Fatalf("bins %v: tones in lanes %04b, want %04b (%v, want %v)", k, got.ok, want.ok, got, want)
			}
			for l := range 4 {
				if want.ok>>l&1 != 0 {
					held++
					if math.Float64bits(got.p[l]) != math.Float64bits(want.p[l]) || math.Float64bits(got.f[l]) != math.Float64bits(want.f[l]) {
						t.Fatalf("bins %v, lane %d: %v %v, want %v %v", k, l, got.p[l], got.f[l], want.p[l], want.f[l])
					}
				}
			}
		}
		check()
		// Each bin's power in the window exactly at the limit of the
		// alias test, then a step below it.
		for _, b := range k {
			if p, f, ok := measureGo(&subX, &win, &amp2, b); ok || p != 0 {
				amp2[b] = 0.25 * p * response(f).win
			}
		}
		check()
		for _, b := range k {
			amp2[b] = math.Nextafter(amp2[b], 0)
		}
		check()
	}
	if held < 10000 {
		t.Fatalf("only %d lanes held a tone: the comparison saw too few", held)
	}
}

// TestRespIndexAssembly: the assembly's response index is respIndex's,
// halves (rounded away from zero), the clamps at both ends and random
// offsets included.
func TestRespIndexAssembly(t *testing.T) {
	if !useAVX {
		t.Skip("no AVX on this processor")
	}
	var fs []float64
	for n := -600; n <= 600; n++ {
		h := (float64(n) + 0.5) * gainStep
		fs = append(fs, float64(n)*gainStep, h, math.Nextafter(h, 0), math.Nextafter(h, 1000), -h)
	}
	r := rand.New(rand.NewPCG(23, 24))
	for range 10000 {
		fs = append(fs, (r.Float64()*2-1)*300)
	}
	fs = append(fs, 0, math.Copysign(0, -1), 5e-324, -5e-324, 1e-300)
	for len(fs)%4 != 0 {
		fs = append(fs, 0)
	}
	for i := 0; i < len(fs); i += 4 {
		var got [4]int32
		respIndexAVX((*[4]float64)(fs[i:]), &got)
		for l, f := range fs[i : i+4] {
			if want := respIndex(f); int(got[l]) != want {
				t.Fatalf("offset %v Hz: index %d, want %d", f, got[l], want)
			}
		}
	}
}

// TestOffsetsAssembly: offsetsAVX gives offsetsGo's offsets and gains to
// the bit, in every quadrant, on the axes (either zero), at zero and at
// equal parts.
func TestOffsetsAssembly(t *testing.T) {
	if !useAVX {
		t.Skip("no AVX on this processor")
	}
	r := rand.New(rand.NewPCG(25, 26))
	neg0 := math.Copysign(0, -1)
	parts := []float64{0, neg0, 1, -1, 3e-9, -7e12, 5e-324}
	var zs []complex128
	for _, a := range parts {
		for _, b := range parts {
			zs = append(zs, complex(a, b))
		}
	}
	for range 20000 {
		a := math.Pow(10, r.Float64()*30-10)
		zs = append(zs, complex(a*r.NormFloat64(), a*r.NormFloat64()))
	}
	for i := 0; i+1 < len(zs); i++ {
		z := [2]complex128{zs[i], zs[len(zs)-1-i]}
		var df, g, df2, g2 [2]float64
		offsetsAVX(&z, &df, &g)
		offsetsGo(&z, &df2, &g2)
		for l := range 2 {
			if math.Float64bits(df[l]) != math.Float64bits(df2[l]) || math.Float64bits(g[l]) != math.Float64bits(g2[l]) {
				t.Fatalf("z %v: offset %v, gain %v; want %v, %v", z[l], df[l], g[l], df2[l], g2[l])
			}
		}
	}
}
