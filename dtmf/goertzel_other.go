//go:build !amd64

package dtmf

func goertzel8(x []float64, s1, s2, c *[8]float64) { goertzel8Go(x, s1, s2, c) }

func goertzel8Subs(x *[batchSubs * subLen]float64, s *[batchSubs][2][8]float64, k int) {
	goertzel8SubsGo(x, s, k)
}

func spectra(d *Detector, st *[2][8]float64, ref *[2][8]complex128) { spectraGo(d, st, ref) }

func goertzel8SubsG711([]byte, *g711Table, *[batchSubs][2][8]float64, *[batchSubs]float64) bool {
	return false
}

func toFloats(dst *[batchSubs * subLen]float64, src []int16, e *[batchSubs]float64) {
	toFloatsGo(dst, src, e)
}

func measure4(subX *[longSubs][8]complex128, win *[winSubs]int, amp2 *[8]float64, k *[4]int, t *tones) {
	measure4Go(subX, win, amp2, k, t)
}

func offsets(z *[2]complex128, df, g *[2]float64) { offsetsGo(z, df, g) }
