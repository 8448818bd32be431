package dtmf

import "golang.org/x/sys/cpu"

// The filters in assembly (goertzel_amd64.s): with AVX four filters an
// instruction, else SSE2, which every amd64 processor has, two. Both give
// goertzel8Go's results to the bit. The other per-sub-block steps have AVX
// versions too, each the same operations as its Go version (so the same
// bits), and fall back to it without AVX.
var useAVX = cpu.X86.HasAVX

func goertzel8(x []float64, s1, s2, c *[8]float64) {
	if useAVX {
		goertzel8AVX(x, s1, s2, c)
		return
	}
	goertzel8SSE2(x, s1, s2, c)
}

// goertzel8Subs runs the filters from rest over each of the first k
// sub-blocks of x, as goertzel8SubsGo does. With AVX three sub-blocks
// share a pass.
func goertzel8Subs(x *[batchSubs * subLen]float64, s *[batchSubs][2][8]float64, k int) {
	if !useAVX {
		for j := range k {
			s[j] = [2][8]float64{}
			goertzel8SSE2(x[j*subLen:(j+1)*subLen], &s[j][0], &s[j][1], &goertzel.coef)
		}
		return
	}
	goertzel8SubsAVX(x, s, k, &goertzel.coef)
}

// goertzel8SubsG711 is filterG711 with AVX: the whole sub-blocks of G.711
// bytes in (at most batchSubs) decoded by table as the filters take them,
// three a pass, and their energies. It reports false, having done
// nothing, without AVX.
func goertzel8SubsG711(in []byte, t *g711Table, s *[batchSubs][2][8]float64, e *[batchSubs]float64) bool {
	if !useAVX {
		return false
	}
	goertzel8SubsG711AVX(in, t, s, e, &goertzel.coef)
	return true
}

// toFloats is toFloatsGo, with AVX four samples an instruction.
func toFloats(dst *[batchSubs * subLen]float64, src []int16, e *[batchSubs]float64) {
	if useAVX {
		toFloatsAVX(dst, src, e)
		return
	}
	toFloatsGo(dst, src, e)
}

// spectra is spectraGo, with AVX two filters an instruction and the
// strongest tones picked four a time.
func spectra(d *Detector, st *[2][8]float64, ref *[2][8]complex128) {
	if useAVX {
		spectraAVX(d, st, ref)
		return
	}
	spectraGo(d, st, ref)
}

// measure4 is measure4Go, with AVX the four bins at once.
func measure4(subX *[longSubs][8]complex128, win *[winSubs]int, amp2 *[8]float64, k *[4]int, t *tones) {
	if useAVX {
		measureAVX(subX, win, amp2, k, t)
		return
	}
	measure4Go(subX, win, amp2, k, t)
}

//go:noescape
func measureAVX(subX *[longSubs][8]complex128, win *[winSubs]int, amp2 *[8]float64, k *[4]int, t *tones)

// offsets is offsetsGo, with AVX the two tones at once.
func offsets(z *[2]complex128, df, g *[2]float64) {
	if useAVX {
		offsetsAVX(z, df, g)
		return
	}
	offsetsGo(z, df, g)
}

//go:noescape
func offsetsAVX(z *[2]complex128, df, gain *[2]float64)

//go:noescape
func respIndexAVX(f *[4]float64, i *[4]int32)

//go:noescape
func toFloatsAVX(dst *[batchSubs * subLen]float64, src []int16, e *[batchSubs]float64)

//go:noescape
func spectraAVX(d *Detector, st *[2][8]float64, ref *[2][8]complex128)

//go:noescape
func goertzel8SSE2(x []float64, s1, s2, c *[8]float64)

//go:noescape
func goertzel8AVX(x []float64, s1, s2, c *[8]float64)

//go:noescape
func goertzel8SubsG711AVX(in []byte, t *g711Table, s *[batchSubs][2][8]float64, e *[batchSubs]float64, c *[8]float64)

//go:noescape
func goertzel8SubsAVX(x *[batchSubs * subLen]float64, s *[batchSubs][2][8]float64, k int, c *[8]float64)
