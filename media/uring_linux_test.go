package media

import (
	"runtime"
	"testing"
)

// TestRingCount: one ring fewer than GOMAXPROCS, so that a P is left
// for the rest of the process (see uringEngine); at least one, at most 4.
func TestRingCount(t *testing.T) {
	probe, err := newUringEngine()
	if err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	probe.close()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, tc := range []struct{ procs, rings int }{{1, 1}, {2, 1}, {3, 2}, {5, 4}, {16, 4}} {
		runtime.GOMAXPROCS(tc.procs)
		e, err := newUringEngine()
		if err != nil {
			t.Fatal(err)
		}
		if n := len(e.(*uringEngine).rings); n != tc.rings {
			t.Errorf("GOMAXPROCS %d: %d rings, want %d", tc.procs, n, tc.rings)
		}
		e.close()
	}
}
