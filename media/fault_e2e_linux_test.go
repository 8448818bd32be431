package media_test

import (
	"context"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
)

// TestRingFailureEndToEnd: the io_uring ring that carries the calls
// fails (io_uring_enter refused). Each of its calls ends with BYE on both
// legs and call.failed (ring_failed), the gateway goes on, and a new call
// goes to another ring (or to goroutines when there is none) and is
// masked.
func TestRingFailureEndToEnd(t *testing.T) {
	skipChild(t)
	g := startGateway(t, media.IOUring)
	calls := []*call{g.dial(), g.dial(), g.dial()}
	for _, err := range typeDigits(calls, "4") {
		if err != nil {
			t.Fatal(err)
		}
	}
	restore := media.FailRing(0) // sessions fill ring 0 first
	for _, c := range calls {
		g.waitFailed(c, audit.ReasonRingFailed)
	}
	restore()
	n := g.dial()
	if err := typeDigits([]*call{n}, "96")[0]; err != nil {
		t.Fatal(err)
	}
	g.waitHeard(n, "96")
	checkMasked(t, n, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.customer.Hangup(ctx); err != nil {
		t.Error(err)
	}
}
