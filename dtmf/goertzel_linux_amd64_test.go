package dtmf

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestGoertzelG711ReadsOnlyIn: the G.711 filters read nothing past their
// input, whatever its count of sub-blocks, though a pass takes three: each
// input ends where an unreadable page begins, so a read past it faults.
func TestGoertzelG711ReadsOnlyIn(t *testing.T) {
	if !useAVX {
		t.Skip("no AVX on this processor")
	}
	page := unix.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 2*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Skip("no anonymous mapping:", err)
	}
	defer unix.Munmap(mem)
	if err := unix.Mprotect(mem[page:], unix.PROT_NONE); err != nil {
		t.Skip("cannot protect a page:", err)
	}
	for i := range page {
		mem[i] = byte(i * 7)
	}
	for k := 1; k <= batchSubs; k++ {
		in := mem[page-k*subLen : page]
		var got, want [batchSubs][2][8]float64
		var e, ew [batchSubs]float64
		goertzel8SubsG711AVX(in, &ulaw, &got, &e, &goertzel.coef)
		plainly(func() {
			var x [batchSubs * subLen]float64
			for j := range k {
				ew[j] = g711ToFloat(x[j*subLen:(j+1)*subLen], in[j*subLen:(j+1)*subLen], &ulaw)
			}
			goertzel8SubsGo(&x, &want, k)
		})
		for j := range k {
			if got[j] != want[j] || e[j] != ew[j] {
				t.Fatalf("%d sub-blocks at a page's end: sub-block %d %v %v, want %v %v", k, j, got[j], e[j], want[j], ew[j])
			}
		}
	}
}
