package dtmf

// goertzel8 runs the eight filters over x (goertzel_amd64.s): SSE2, which
// every amd64 processor has, two filters per instruction.
//
//go:noescape
func goertzel8(x []float64, s1, s2, c *[8]float64)

// goertzel8G711 decodes in by table, runs goertzel8 over it and returns its
// energy (goertzel_amd64.s), as goertzel8G711Go does.
//
//go:noescape
func goertzel8G711(in []byte, table *[256]float64, s1, s2, c *[8]float64) (energy float64)
