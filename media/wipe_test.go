package media

import (
	"testing"
	"time"

	"github.com/tonevault/tonevault/dtmf"
)

// TestCloseWipesKeyPresses: the presses the session de-duplicated are
// card data; Close leaves none of them in its memory.
func TestCloseWipesKeyPresses(t *testing.T) {
	e := newEnv(t, nil)
	seq, ts, ssrc := uint16(1), uint32(8000), uint32(0x4733)
	for dur := uint32(160); dur <= 800; dur += 160 {
		e.toPlatform(rtpPkt(101, seq, ts, ssrc, dur == 160, eventPayload('4', dur == 800, uint16(dur))))
		seq++
	}
	e.sess.InfoDigit('1', 100*time.Millisecond)
	if got := e.sink.digits(); got != "41" {
		t.Fatalf("sink got %q, want 41", got)
	}
	e.sess.mu.Lock()
	held := e.sess.dedup != (dtmf.Deduper{})
	e.sess.mu.Unlock()
	if !held {
		t.Fatal("control: the Deduper holds no press before Close")
	}
	e.sess.Close()
	e.sess.mu.Lock()
	defer e.sess.mu.Unlock()
	if e.sess.dedup != (dtmf.Deduper{}) {
		t.Error("the Deduper still holds presses after Close")
	}
	for i, ev := range e.sess.c.events[:cap(e.sess.c.events)] {
		if ev != (dtmf.Event{}) {
			t.Errorf("event buffer slot %d still holds an event after Close", i)
		}
	}
}
