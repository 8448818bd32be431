package dtmf

import (
	"math/rand/v2"
	"testing"
)

// TestGoertzelAssembly: both assembly versions, whichever the processor
// picks, give the Go filters' results to the bit.
func TestGoertzelAssembly(t *testing.T) {
	type impl struct {
		name string
		f    func(x []float64, s1, s2, c *[8]float64)
		g    func(in []byte, table *[256]float64, s1, s2, c *[8]float64) float64
	}
	impls := []impl{{"SSE2", goertzel8SSE2, goertzel8G711SSE2}}
	if useAVX {
		impls = append(impls, impl{"AVX", goertzel8AVX, goertzel8G711AVX})
	} else {
		t.Log("no AVX on this processor: only SSE2 tested")
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, im := range impls {
		for n := range subLen + 1 {
			in := make([]byte, n)
			x := make([]float64, n)
			for i := range in {
				in[i] = byte(r.Uint32())
				x[i] = ulawFloat[in[i]]
			}
			var a1, a2 [8]float64
			for k := range 8 {
				a1[k] = r.NormFloat64() * 1e4
				a2[k] = r.NormFloat64() * 1e4
			}
			b1, b2, c1, c2, d1, d2 := a1, a2, a1, a2, a1, a2
			im.f(x, &a1, &a2, &goertzel.coef)
			goertzel8Go(x, &b1, &b2, &goertzel.coef)
			if a1 != b1 || a2 != b2 {
				t.Fatalf("%s, %d samples: %v %v, want %v %v", im.name, n, a1, a2, b1, b2)
			}
			ec := im.g(in, &ulawFloat, &c1, &c2, &goertzel.coef)
			ed := goertzel8G711Go(in, &ulawFloat, &d1, &d2, &goertzel.coef)
			if c1 != d1 || c2 != d2 || ec != ed {
				t.Fatalf("%s G.711, %d samples: %v %v %v, want %v %v %v", im.name, n, c1, c2, ec, d1, d2, ed)
			}
		}
	}
}
