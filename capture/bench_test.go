package capture

import (
	"testing"
	"time"

	"github.com/tonevault/tonevault/dtmf"
)

// BenchmarkDigit is one key press into a live session: the lookup by
// call, the brand check, the buffer append. Every eighth press is '*' so
// that the card number never completes.
func BenchmarkDigit(b *testing.B) {
	for _, subs := range []int{0, 1} {
		name := map[int]string{0: "no_subscriber", 1: "one_subscriber"}[subs]
		b.Run(name, func(b *testing.B) {
			e := newEnv(b, Config{InterDigitTimeout: -1, FieldTimeout: -1, SessionTimeout: -1}, nil)
			s := e.start("c")
			if subs > 0 {
				ch, cancel := s.Subscribe()
				defer cancel()
				go func() {
					for range ch {
					}
				}()
			}
			keys := []dtmf.Digit("4111111*")
			at := t0.Add(time.Second)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				e.m.Digit("c", keys[i%len(keys)], at)
			}
			b.StopTimer()
			if v := s.View(); v.State != StateCollecting {
				b.Fatalf("state %s", v.State)
			}
		})
	}
}
