//go:build !amd64

package dtmf

func goertzel8(x []float64, s1, s2, c *[8]float64) { goertzel8Go(x, s1, s2, c) }

func goertzel8Subs(x *[batchSubs * subLen]float64, s *[batchSubs][2][8]float64, k int) {
	goertzel8SubsGo(x, s, k)
}

func project(st *[2][8]float64, ref *[2][8]complex128, sx *[8]complex128, sp *[8]float64, y *[8]complex128) {
	projectGo(st, ref, sx, sp, y)
}
