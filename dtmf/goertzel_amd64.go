package dtmf

import "golang.org/x/sys/cpu"

// The filters in assembly (goertzel_amd64.s): with AVX four filters an
// instruction, else SSE2, which every amd64 processor has, two. Both give
// goertzel8Go's results to the bit.
var useAVX = cpu.X86.HasAVX

func goertzel8(x []float64, s1, s2, c *[8]float64) {
	if useAVX {
		goertzel8AVX(x, s1, s2, c)
		return
	}
	goertzel8SSE2(x, s1, s2, c)
}

// goertzel8G711 decodes in by table, runs the filters over it and returns
// its energy, as goertzel8G711Go does.
func goertzel8G711(in []byte, table *[256]float64, s1, s2, c *[8]float64) float64 {
	if useAVX {
		return goertzel8G711AVX(in, table, s1, s2, c)
	}
	return goertzel8G711SSE2(in, table, s1, s2, c)
}

//go:noescape
func goertzel8SSE2(x []float64, s1, s2, c *[8]float64)

//go:noescape
func goertzel8AVX(x []float64, s1, s2, c *[8]float64)

//go:noescape
func goertzel8G711SSE2(in []byte, table *[256]float64, s1, s2, c *[8]float64) (energy float64)

//go:noescape
func goertzel8G711AVX(in []byte, table *[256]float64, s1, s2, c *[8]float64) (energy float64)
