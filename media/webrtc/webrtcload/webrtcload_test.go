package webrtcload

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestRun carries a few calls both ways through each kind of agent leg,
// in this process; what arrives is counted (loss is the benchmark's to
// report, not a pass mark on a shared machine).
func TestRun(t *testing.T) {
	for _, leg := range []string{LegWebRTC, LegRTP} {
		t.Run(leg, func(t *testing.T) {
			res, err := Run(Options{Calls: 3, Duration: time.Second, Leg: leg, IO: "goroutines"}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if res.ToAgent.Received == 0 || res.ToCustomer.Received == 0 {
				t.Errorf("nothing went through: %+v", res)
			}
			var b strings.Builder
			res.Print(&b)
			if !strings.Contains(b.String(), "3 calls, agent leg "+leg) {
				t.Errorf("report:\n%s", b.String())
			}
		})
	}
	if err := (Options{Calls: 1, Duration: time.Second, Leg: "sip"}).Validate(); err == nil {
		t.Error("an unknown leg kind was accepted")
	}
}
