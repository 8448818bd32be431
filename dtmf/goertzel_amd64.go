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
// share a pass; the ones past k it computes too, and they are ignored.
func goertzel8Subs(x *[batchSubs * subLen]float64, s *[batchSubs][2][8]float64, k int) {
	if !useAVX {
		for j := range k {
			s[j] = [2][8]float64{}
			goertzel8SSE2(x[j*subLen:(j+1)*subLen], &s[j][0], &s[j][1], &goertzel.coef)
		}
		return
	}
	for j := 0; j < k; j += 3 {
		goertzel8x3AVX((*[3 * subLen]float64)(x[j*subLen:]), (*[3][2][8]float64)(s[j:]), &goertzel.coef)
	}
}

// goertzel8SubsG711 is filterG711 with AVX: the first k sub-blocks of
// G.711 bytes in decoded by table as the filters take them, three a pass,
// and their energies. It reports false, having done nothing, without AVX.
func goertzel8SubsG711(in []byte, k int, t *g711Table, buf *[batchSubs * subLen]byte, s *[batchSubs][2][8]float64, e *[batchSubs]float64) bool {
	if !useAVX {
		return false
	}
	copy(buf[:], in[:k*subLen])
	var ei [3]int64
	for j := 0; j < k; j += 3 {
		goertzel8x3G711AVX((*[3 * subLen]byte)(buf[j*subLen:]), t, (*[3][2][8]float64)(s[j:]), &ei, &goertzel.coef)
		for i := range min(3, k-j) {
			e[j+i] = float64(ei[i])
		}
	}
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

// project is projectGo, with AVX two filters an instruction and the
// strongest tones picked four a time.
func project(st *[2][8]float64, ref *[2][8]complex128, sx *[8]complex128, sp *[8]float64, y *[8]complex128, yp *[8]float64, pk *pick) {
	if useAVX {
		projectAVX(st, ref, sx, sp, y, yp, pk)
		return
	}
	projectGo(st, ref, sx, sp, y, yp, pk)
}

// sum3 is sum3Go, with AVX two filters an instruction and the strongest
// tones picked four a time.
func sum3(subX *[longSubs][8]complex128, subP *[longSubs][8]float64, win *[winSubs]int, x *[8]complex128, amp2, broad *[8]float64, pa, pb *pick) {
	if useAVX {
		sum3AVX(subX, subP, win, 4.0/(winLen*winLen), x, amp2, broad, pa, pb)
		return
	}
	sum3Go(subX, subP, win, x, amp2, broad, pa, pb)
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
func projectAVX(st *[2][8]float64, ref *[2][8]complex128, sx *[8]complex128, sp *[8]float64, y *[8]complex128, yp *[8]float64, pk *pick)

//go:noescape
func sum3AVX(subX *[longSubs][8]complex128, subP *[longSubs][8]float64, win *[winSubs]int, scale float64, x *[8]complex128, amp2, broad *[8]float64, pa, pb *pick)

//go:noescape
func goertzel8SSE2(x []float64, s1, s2, c *[8]float64)

//go:noescape
func goertzel8AVX(x []float64, s1, s2, c *[8]float64)

//go:noescape
func goertzel8x3G711AVX(in *[3 * subLen]byte, t *g711Table, s *[3][2][8]float64, e *[3]int64, c *[8]float64)

//go:noescape
func goertzel8x3AVX(x *[3 * subLen]float64, s *[3][2][8]float64, c *[8]float64)
