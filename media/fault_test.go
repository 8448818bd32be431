package media

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/test/refdetect"
)

func testMetrics(t testing.TB) *metrics {
	t.Helper()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// another opens one more session on e's relay, with its own peers, the
// same sink and registry.
func (e *env) another(t *testing.T, callID string) *env {
	t.Helper()
	o := &env{t: t, relay: e.relay, reg: e.reg, sink: e.sink}
	var err error
	if o.sess, err = e.relay.Open(callID); err != nil {
		t.Fatal(err)
	}
	o.carrier, o.platform = listen(t), listen(t)
	o.setRemote(Carrier, o.carrier, "sendrecv")
	o.setRemote(Platform, o.platform, "sendrecv")
	return o
}

// digitsOf is what the sink got for one call.
func (s *sink) digitsOf(callID string) string {
	var b strings.Builder
	for _, d := range s.all() {
		if d.CallID == callID {
			b.WriteByte(byte(d.Digit))
		}
	}
	return b.String()
}

// masksDigits sends a press of digits through e in lock-step and checks
// that every packet came through, masked (our detector and the
// aggressive reference find nothing on the platform leg), and that the
// sink heard the digits.
func (e *env) masksDigits(t *testing.T, digits string, seq *uint16, ts *uint32) {
	t.Helper()
	before := e.sink.digitsOf(e.sess.CallID())
	pcm := toneSignal(digits, 100, 80, 80, -8)
	out := e.sendAudio(pcm, PCMU, 0, seq, ts, 0xCA11)
	if len(out) != len(pcm)/160 {
		t.Fatalf("%s: %d packets relayed, sent %d", e.sess.CallID(), len(out), len(pcm)/160)
	}
	agent := decode(payloads(out), PCMU)
	if found := refdetect.Digits(refdetect.Aggressive(agent)); found != "" {
		t.Errorf("%s: the aggressive detector finds %q on the platform leg", e.sess.CallID(), found)
	}
	d := dtmf.NewDetector(dtmf.DetectorConfig{})
	if evs := d.Flush(d.Process(agent, nil)); len(evs) != 0 {
		t.Errorf("%s: %d digits on the platform leg", e.sess.CallID(), len(evs))
	}
	if got := e.sink.digitsOf(e.sess.CallID()); got != before+digits {
		t.Errorf("%s: sink has %q, want %q", e.sess.CallID(), got, before+digits)
	}
}

// waitDone waits for s's Done and returns its Err.
func waitDone(t *testing.T, s *Session) error {
	t.Helper()
	select {
	case <-s.Done():
		return s.Err()
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: Done not closed", s.CallID())
		return nil
	}
}

func faultCount(t *testing.T, reg *prometheus.Registry, scope string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tonevault_media_faults_total" {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "scope" && l.GetValue() == scope {
					return counterValue(m)
				}
			}
		}
	}
	return 0
}

func counterValue(m *dto.Metric) float64 { return m.GetCounter().GetValue() }

// setHook installs f as testFault until the test ends.
func setHook(t *testing.T, f func(callID string)) {
	t.Helper()
	testFault.Store(&f)
	t.Cleanup(func() { testFault.Store(nil) })
}

// TestFaultEndsOneSession: a panic while relaying one call's packet, in
// the masker or in the digit sink, drops that packet and every later one
// of that call (nothing reaches its platform leg, masked or not), closes
// its Done with ErrFault, and leaves the relay's other calls relaying
// masked audio and reporting their digits. The child run of
// TestGoroutineEngine does the same on the goroutine engine.
func TestFaultEndsOneSession(t *testing.T) {
	for _, tc := range []struct {
		name string
		arm  func(t *testing.T, target string, e *env)
	}{
		{"masker", func(t *testing.T, target string, _ *env) {
			setHook(t, func(callID string) {
				if callID == target {
					panic(fmt.Sprintf("test fault in %s's masker", callID))
				}
			})
		}},
		{"digit sink", func(t *testing.T, target string, e *env) {
			e.sink.panicOn(target)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := newEnv(t, nil)
			calls := []*env{first, first.another(t, "call-2"), first.another(t, "call-3"), first.another(t, "call-4")}
			seqs, tss := make([]uint16, len(calls)), make([]uint32, len(calls))
			for i, c := range calls {
				seqs[i], tss[i] = 100, 1000
				c.masksDigits(t, "1", &seqs[i], &tss[i])
			}
			victim := calls[1]
			tc.arm(t, victim.sess.CallID(), first)

			// The victim's next press: the masker (or the sink, once the
			// tone is detected) panics. Nothing of it reaches the agent,
			// from the packet that panicked on.
			pcm := toneSignal("7", 100, 80, 80, -8)
			raw := encode(pcm, PCMU)
			passed := 0
			for i := 0; i+160 <= len(raw) && victim.sess.Err() == nil; i += 160 {
				if _, ok := victim.toPlatformMaybe(rtpPkt(0, seqs[1], tss[1], 0xCA11, false, raw[i:i+160])); ok {
					passed++
					if victim.sess.Err() != nil {
						t.Fatalf("packet %d relayed after the fault", i/160)
					}
				}
				seqs[1]++
				tss[1] += 160
			}
			if err := waitDone(t, victim.sess); !errors.Is(err, ErrFault) || errors.Is(err, ErrRingFailed) {
				t.Fatalf("victim's Err = %v, want ErrFault", err)
			}
			if tc.name == "masker" && passed != 0 {
				t.Errorf("%d packets of the victim relayed; the masker panicked on the first", passed)
			}
			if got := victim.sink.digitsOf(victim.sess.CallID()); strings.Contains(got, "7") && tc.name == "masker" {
				t.Errorf("victim's digits %q: the press reached the sink past the fault", got)
			}
			// Still nothing once the fault is over.
			for range 3 {
				if g, ok := victim.toPlatformMaybe(rtpPkt(0, seqs[1], tss[1], 0xCA11, false, raw[:160])); ok {
					t.Fatalf("victim relayed a packet after its fault: % x", g.raw[:12])
				}
				seqs[1]++
				tss[1] += 160
			}
			if n := first.metric(toPlatform, dropFault); n < 3 {
				t.Errorf("dropped/fault = %v, want at least the 3 packets after the fault", n)
			}
			if n := faultCount(t, first.reg, "session"); n != 1 {
				t.Errorf("tonevault_media_faults_total{scope=session} = %v, want 1", n)
			}

			// The others go on, masking and reporting digits.
			for i, c := range calls {
				if c == victim {
					continue
				}
				c.masksDigits(t, "42", &seqs[i], &tss[i])
				select {
				case <-c.sess.Done():
					t.Errorf("%s ended: %v", c.sess.CallID(), c.sess.Err())
				default:
				}
			}
			// Close frees the victim as any other, and never hangs.
			victim.sess.Close()
			if err := victim.sess.Err(); !errors.Is(err, ErrFault) {
				t.Errorf("Err after Close = %v, want ErrFault", err)
			}
		})
	}
}

// panicOn makes the sink panic on the digits of callID.
func (s *sink) panicOn(callID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bomb = callID
}

// TestFaultOutsideThePacketPath: a panic in a SIP INFO digit's handling
// or in the FailClosed callback ends that session, and InfoDigit's
// caller (a SIP handler) goes on.
func TestFaultOutsideThePacketPath(t *testing.T) {
	t.Run("info digit", func(t *testing.T) {
		e := newEnv(t, nil)
		e.sink.panicOn("call-1")
		e.sess.InfoDigit('5', 0) // must not panic here
		if err := waitDone(t, e.sess); !errors.Is(err, ErrFault) {
			t.Fatalf("Err = %v, want ErrFault", err)
		}
		if _, ok := e.toPlatformMaybe(rtpPkt(0, 1, 160, 1, false, make([]byte, 160))); ok {
			t.Error("packet relayed after the fault")
		}
	})
	t.Run("fail closed callback", func(t *testing.T) {
		cfg := testConfig()
		var once sync.Once
		r, err := NewRelay(cfg, Options{FailClosed: func(callID, reason string) {
			once.Do(func() { panic("test fault in FailClosed") })
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		e := &env{t: t, relay: r, reg: prometheus.NewRegistry(), sink: &sink{}}
		if e.sess, err = r.Open("call-1"); err != nil {
			t.Fatal(err)
		}
		e.carrier, e.platform = listen(t), listen(t)
		e.setRemote(Carrier, e.carrier, "sendrecv")
		e.setRemote(Platform, e.platform, "sendrecv")
		e.toPlatformMaybe(rtpPkt(1, 1, 160, 1, false, make([]byte, 160))) // an unknown payload type: replaced, and FailClosed told
		if err := waitDone(t, e.sess); !errors.Is(err, ErrFault) {
			t.Fatalf("Err = %v, want ErrFault", err)
		}
	})
}
