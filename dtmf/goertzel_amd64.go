package dtmf

// goertzel8 runs the eight filters over x (goertzel_amd64.s): SSE2, which
// every amd64 processor has, two filters per instruction.
//
//go:noescape
func goertzel8(x []float64, s1, s2, c *[8]float64)
