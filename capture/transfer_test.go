package capture

import "testing"

// TestCallTransferred: a transfer ends the live session with reason
// transferred and wipes what was typed; the call's other sessions and
// other calls are untouched.
func TestCallTransferred(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	s := e.start("c")
	other := e.start("d")
	e.keys("c", visa)
	s.mu.Lock()
	pan := s.fields[0].buf[:cap(s.fields[0].buf)] // alias: sees the wipe
	s.mu.Unlock()
	e.m.CallTransferred("c")
	if v := s.View(); v.State != StateCancelled || v.Reason != ReasonTransferred {
		t.Fatalf("session after the transfer: %s %s", v.State, v.Reason)
	}
	if !allZero(pan) {
		t.Fatal("card number not wiped")
	}
	assertWiped(t, s)
	if e.m.Active("c") || !e.m.Active("d") || !other.View().State.Live() {
		t.Fatal("the transfer ended the wrong session")
	}
	e.m.CallTransferred("unknown")
}
