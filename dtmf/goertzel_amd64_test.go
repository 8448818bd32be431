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
	for range 100 {
		var x [3 * subLen]float64
		for i := range x {
			x[i] = float64(int16(r.Uint32()))
		}
		var got [3][2][8]float64
		goertzel8x3AVX(&x, &got, &goertzel.coef)
		for j := range 3 {
			var s1, s2 [8]float64
			goertzel8Go(x[j*subLen:(j+1)*subLen], &s1, &s2, &goertzel.coef)
			if got[j] != [2][8]float64{s1, s2} {
				t.Fatalf("AVX, three sub-blocks: sub-block %d %v, want %v %v", j, got[j], s1, s2)
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

// TestProjectAssembly: projectAVX gives projectGo's results to the bit.
func TestProjectAssembly(t *testing.T) {
	if !useAVX {
		t.Skip("no AVX on this processor")
	}
	r := rand.New(rand.NewPCG(13, 14))
	for j := range phases {
		var st [2][8]float64
		var sx, y [8]complex128
		var yp, yp2 [8]float64
		for k := range 8 {
			st[0][k], st[1][k] = r.NormFloat64()*1e6, r.NormFloat64()*1e6
			sx[k] = complex(r.NormFloat64()*1e7, r.NormFloat64()*1e7)
			y[k] = complex(r.NormFloat64()*1e8, r.NormFloat64()*1e8)
		}
		sx2, y2 := sx, y
		var sp, sp2 [8]float64
		projectAVX(&st, &goertzel.ref[j], &sx, &sp, &y, &yp)
		projectGo(&st, &goertzel.ref[j], &sx2, &sp2, &y2, &yp2)
		if sx != sx2 || sp != sp2 || y != y2 || yp != yp2 {
			t.Fatalf("phase %d: %v %v %v %v, want %v %v %v %v", j, sx, sp, y, yp, sx2, sp2, y2, yp2)
		}
	}
}

// TestSum3Assembly: sum3AVX gives sum3Go's results to the bit.
func TestSum3Assembly(t *testing.T) {
	if !useAVX {
		t.Skip("no AVX on this processor")
	}
	r := rand.New(rand.NewPCG(15, 16))
	for range 1000 {
		var s [3][8]complex128
		var p [3][8]float64
		for j := range 3 {
			for k := range 8 {
				s[j][k] = complex(r.NormFloat64()*1e6, r.NormFloat64()*1e6)
				p[j][k] = r.ExpFloat64() * 1e12
			}
		}
		ps, pp := &[3]*[8]complex128{&s[0], &s[1], &s[2]}, &[3]*[8]float64{&p[0], &p[1], &p[2]}
		var x, x2 [8]complex128
		var a, a2, b, b2 [8]float64
		sum3AVX(ps, pp, 4.0/(winLen*winLen), &x, &a, &b)
		sum3Go(ps, pp, &x2, &a2, &b2)
		if x != x2 || a != a2 || b != b2 {
			t.Fatalf("%v %v %v, want %v %v %v", x, a, b, x2, a2, b2)
		}
	}
}

// TestGoertzelG711Assembly: the G.711 filters give the Go filters' results
// on the decoded samples, and the samples' energy, to the bit.
func TestGoertzelG711Assembly(t *testing.T) {
	if !useAVX {
		t.Skip("no AVX on this processor")
	}
	r := rand.New(rand.NewPCG(17, 18))
	for _, table := range []*g711Table{&ulaw, &alaw} {
		for range 100 {
			var in [3 * subLen]byte
			for i := range in {
				in[i] = byte(r.Uint32())
			}
			var got [3][2][8]float64
			var e [3]int64
			goertzel8x3G711AVX(&in, table, &got, &e, &goertzel.coef)
			for j := range 3 {
				var x [subLen]float64
				want := g711ToFloat(x[:], in[j*subLen:(j+1)*subLen], table)
				var s1, s2 [8]float64
				goertzel8Go(x[:], &s1, &s2, &goertzel.coef)
				if got[j] != [2][8]float64{s1, s2} || float64(e[j]) != want {
					t.Fatalf("sub-block %d: %v %v, want %v %v %v", j, got[j], e[j], s1, s2, want)
				}
			}
		}
	}
}

// TestToFloatAssembly: toFloatAVX converts and sums as toFloat does.
func TestToFloatAssembly(t *testing.T) {
	if !useAVX {
		t.Skip("no AVX on this processor")
	}
	r := rand.New(rand.NewPCG(19, 20))
	for n := range 1000 {
		var src [subLen]int16
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
		var got, want [subLen]float64
		eg, ew := toFloatAVX(&got, &src), toFloat(want[:], src[:])
		if got != want || eg != ew {
			t.Fatalf("%v: %v %v, want %v %v", src, got, eg, want, ew)
		}
	}
}
