//go:build !amd64

package dtmf

func goertzel8(x []float64, s1, s2, c *[8]float64) { goertzel8Go(x, s1, s2, c) }

func goertzel8G711(in []byte, table *[256]float64, s1, s2, c *[8]float64) float64 {
	return goertzel8G711Go(in, table, s1, s2, c)
}
