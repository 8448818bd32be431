package capture

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestTransitionTable(t *testing.T) {
	// The specification, written out: issue 4's state list.
	want := map[transition]bool{}
	add := func(from State, tos ...State) {
		for _, to := range tos {
			want[transition{from, to}] = true
		}
	}
	add(StateCreated, StateCollecting, StateCancelled, StateExpired)
	add(StateCollecting, StateCollecting, StateComplete, StateFailed, StateCancelled, StateExpired)
	add(StateComplete, StateCollecting, StateTokenized, StateFailed, StateCancelled, StateExpired)
	add(StateTokenized, StateCollecting, StateSubmitting, StateFailed, StateCancelled, StateExpired)
	add(StateSubmitting, StateTokenized, StateApproved, StateDeclined, StateFailed, StateCancelled, StateExpired)
	for _, from := range States() {
		for _, to := range States() {
			if got := CanTransition(from, to); got != want[transition{from, to}] {
				t.Errorf("%s → %s: %v", from, to, got)
			}
		}
		final := from == StateApproved || from == StateDeclined || from == StateFailed ||
			from == StateCancelled || from == StateExpired
		if from.Final() != final || from.Live() == final {
			t.Errorf("%s: final %v live %v", from, from.Final(), from.Live())
		}
	}
	if State("paid").Known() || State("paid").Final() || State("paid").Live() {
		t.Error("unknown state")
	}
}

// TestTransitionsReached drives sessions through every transition of the
// table that a session can take (created is left at once, so its cancel
// and expiry are not reachable) and checks that no illegal one was tried.
func TestTransitionsReached(t *testing.T) {
	seen := map[transition]bool{}
	cfg := Config{MaxAttempts: 1}
	scenarios := map[string]func(e *env, s *Session){
		"complete, submit approved": func(e *env, s *Session) {
			e.complete("c")
			_, _ = s.Submit(context.Background(), "a")
		},
		"attempts exhausted": func(e *env, s *Session) { e.keys("c", "4111111111111112#") },
		"cancel collecting":  func(e *env, s *Session) { _ = s.Cancel("a") },
		"expire collecting":  func(e *env, s *Session) { e.m.Tick(e.clk.advance(time.Hour)) },
		"reset complete":     func(e *env, s *Session) { e.complete("c"); _ = s.Reset(FieldExpiry, "a") },
		"cancel complete":    func(e *env, s *Session) { e.complete("c"); _ = s.Cancel("a") },
		"expire complete":    func(e *env, s *Session) { e.complete("c"); e.m.Tick(e.clk.advance(time.Hour)) },
		"not configured": func(e *env, s *Session) {
			e.m.proc = nil
			e.complete("c")
			_, _ = s.Submit(context.Background(), "a")
		},
		"unavailable, reset":  func(e *env, s *Session) { unavailable(e, s); _ = s.Restart("a") },
		"unavailable, cancel": func(e *env, s *Session) { unavailable(e, s); _ = s.Cancel("a") },
		"unavailable, expire": func(e *env, s *Session) { unavailable(e, s); e.m.Tick(e.clk.advance(time.Hour)) },
		"unavailable, audit down": func(e *env, s *Session) {
			unavailable(e, s)
			e.sink.down(e.t)
		},
		"declined":             func(e *env, s *Session) { outcome(e, s, OutcomeDeclined) },
		"failed":               func(e *env, s *Session) { outcome(e, s, OutcomeFailed) },
		"call end in submit":   func(e *env, s *Session) { abortInSubmit(e, s, func() { e.m.CallEnded("c") }) },
		"expiry in submit":     func(e *env, s *Session) { abortInSubmit(e, s, func() { e.m.Tick(e.clk.advance(time.Hour)) }) },
		"illegal actions fail": func(e *env, s *Session) { _ = s.Cancel("a"); _ = s.Restart("a"); _ = s.Reset(FieldExpiry, "a") },
	}
	for name, run := range scenarios {
		e := newEnv(t, cfg, &fakeProc{})
		s := e.start("c")
		run(e, s)
		for _, tr := range e.transitions() {
			if !CanTransition(tr.from, tr.to) {
				t.Errorf("%s: illegal %s → %s tried", name, tr.from, tr.to)
			}
			seen[tr] = true
		}
	}
	for from, tos := range legal {
		for _, to := range tos {
			if from == StateCreated && to != StateCollecting {
				continue
			}
			if !seen[transition{from, to}] {
				t.Errorf("%s → %s never reached", from, to)
			}
		}
	}
}

func unavailable(e *env, s *Session) {
	e.m.proc.(*fakeProc).authErrs = []error{ErrUnavailable}
	e.complete("c")
	if _, err := s.Submit(context.Background(), "a"); !errors.Is(err, ErrUnavailable) {
		e.t.Fatal(err)
	}
}

func outcome(e *env, s *Session, o string) {
	e.m.proc.(*fakeProc).res = Result{Outcome: o}
	e.complete("c")
	_, _ = s.Submit(context.Background(), "a")
}

// abortInSubmit runs abort while Authorize runs, which then reports the
// PSP unavailable: the session ends from submitting.
func abortInSubmit(e *env, s *Session, abort func()) {
	p := e.m.proc.(*fakeProc)
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	p.authGate, p.authEntered, p.authErrs = gate, entered, []error{ErrUnavailable}
	e.complete("c")
	done := make(chan struct{})
	go func() { _, _ = s.Submit(context.Background(), "a"); close(done) }()
	<-entered
	abort()
	close(gate)
	<-done
}
