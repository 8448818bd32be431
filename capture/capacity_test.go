package capture

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestCapacity: no more than MaxLiveSessions live at once (ErrCapacity),
// and no more than MaxRetainedSessions kept: the oldest ended go first,
// before their Retain is up, and Tick's forgetting keeps the count right.
func TestCapacity(t *testing.T) {
	e := newEnv(t, Config{MaxLiveSessions: 2, MaxRetainedSessions: 3}, nil)
	a, b := e.start("ca"), e.start("cb")
	if _, err := e.m.Start("cc", testReq, "x"); !errors.Is(err, ErrCapacity) {
		t.Fatalf("third live session: %v", err)
	}
	_ = a.Cancel("x")
	c := e.start("cc") // a ended: room again
	if _, ok := e.m.Get(a.ID()); !ok {
		t.Fatal("a forgotten while there was room")
	}
	_ = b.Cancel("x")
	_ = c.Cancel("x")
	// Three kept; a fourth forgets the oldest ended (a), then b.
	d := e.start("cd")
	if _, ok := e.m.Get(a.ID()); ok {
		t.Error("the oldest ended session was kept beyond the cap")
	}
	if _, ok := e.m.Get(b.ID()); !ok {
		t.Error("b forgotten before a")
	}
	_ = d.Cancel("x")
	for i := range 20 {
		s := e.start("ce")
		_ = s.Cancel("x")
		if n := len(e.m.sessions()); n > 3 {
			t.Fatalf("after %d start-cancel loops: %d sessions kept", i+1, n)
		}
	}
	// Tick forgets by age; the queue follows.
	e.m.Tick(e.clk.advance(2 * time.Hour))
	if n := len(e.m.sessions()); n != 0 {
		t.Errorf("%d sessions after the retention", n)
	}
	e.m.mu.Lock()
	queued, live := len(e.m.ended), e.m.live
	e.m.mu.Unlock()
	if queued != 0 || live != 0 {
		t.Errorf("ended queue %d, live %d after the retention", queued, live)
	}
	e.start("cf")
	e.start("cg")
	if _, err := e.m.Start("ch", testReq, "x"); !errors.Is(err, ErrCapacity) {
		t.Errorf("live cap after Tick: %v", err)
	}
}

func TestCapacityConfig(t *testing.T) {
	for _, c := range []Config{{MaxLiveSessions: -1}, {MaxLiveSessions: 10, MaxRetainedSessions: 5}} {
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "max_live_sessions") {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Error(err)
	}
}
