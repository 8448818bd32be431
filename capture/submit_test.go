package capture

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/tonevault/tonevault/audit"
)

func TestSubmitNotConfigured(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	s := e.start("c")
	e.complete("c")
	v, err := s.Submit(context.Background(), "a")
	if !errors.Is(err, ErrNotConfigured) || v.State != StateFailed || v.Reason != ReasonNotConfigured ||
		v.Result == nil || v.Result.Outcome != OutcomeFailed {
		t.Fatalf("%v %+v", err, v)
	}
	assertWiped(t, s)
	v2, err2 := s.Submit(context.Background(), "a") // the same outcome again
	if !errors.Is(err2, ErrNotConfigured) || v2.Version != v.Version {
		t.Fatalf("second submit: %v %d/%d", err2, v2.Version, v.Version)
	}
}

func TestSubmitNotReady(t *testing.T) {
	e := newEnv(t, Config{}, &fakeProc{})
	s := e.start("c")
	e.keys("c", visa+"#")
	if _, err := s.Submit(context.Background(), "a"); !errors.Is(err, ErrNotReady) {
		t.Fatal(err)
	}
	if s.View().State != StateCollecting {
		t.Fatal("state changed")
	}
}

func TestSubmitOutcomes(t *testing.T) {
	cases := []struct {
		name   string
		proc   *fakeProc
		state  State
		reason string
		// The session.ended and authorization.result records (no result
		// record when tokenization failed).
		auditReason audit.Reason
		code        string
	}{
		{"approved", &fakeProc{}, StateApproved, OutcomeApproved, audit.ReasonApproved, "00"},
		{"declined", &fakeProc{res: Result{Outcome: OutcomeDeclined, ResponseCode: "05", Reason: "do_not_honour"}}, StateDeclined, "do_not_honour", audit.ReasonDoNotHonour, "05"},
		{"declined, code not listed", &fakeProc{res: Result{Outcome: OutcomeDeclined, ResponseCode: "Q1", Reason: "declined_Q1"}}, StateDeclined, "declined_Q1", audit.ReasonDeclined, "Q1"},
		{"declined without a reason", &fakeProc{res: Result{Outcome: OutcomeDeclined}}, StateDeclined, OutcomeDeclined, audit.ReasonDeclined, ""},
		{"reason from elsewhere, odd code", &fakeProc{res: Result{Outcome: OutcomeDeclined, ResponseCode: "4111111111111111", Reason: "issuer says 4111111111111111"}},
			StateDeclined, "issuer says 4111111111111111", audit.ReasonUnlisted, ""},
		{"failed result", &fakeProc{res: Result{Outcome: OutcomeFailed, Reason: "format_error"}}, StateFailed, "format_error", audit.ReasonFormatError, ""},
		{"bogus outcome", &fakeProc{res: Result{Outcome: "maybe"}}, StateFailed, ReasonInvalidResult, audit.ReasonInvalidResult, ""},
		{"authorize error", &fakeProc{authErrs: []error{errors.New("iso8583: bad field 39")}}, StateFailed, ReasonAuthorization, audit.ReasonAuthorizationFailed, ""},
		{"tokenize error", &fakeProc{tokErrs: []error{errors.New("vault: permission denied")}}, StateFailed, ReasonTokenization, audit.ReasonTokenizationFailed, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, Config{}, c.proc)
			s := e.start("c")
			e.complete("c")
			v, err := s.Submit(context.Background(), "a")
			if err != nil || v.State != c.state || v.Reason != c.reason || v.Result == nil {
				t.Fatalf("%v: %s %q %+v", err, v.State, v.Reason, v.Result)
			}
			assertWiped(t, s)
			tok, auth := c.proc.calls()
			v2, err2 := s.Submit(context.Background(), "a")
			tok2, auth2 := c.proc.calls()
			if err2 != nil || v2.Version != v.Version || tok2 != tok || auth2 != auth {
				t.Fatalf("not idempotent: %v, calls %d/%d → %d/%d", err2, tok, auth, tok2, auth2)
			}
			var ended, result *audit.Record
			for _, r := range e.sink.records() {
				switch r.Event {
				case audit.EventSessionEnded:
					ended = &r
				case audit.EventAuthorizationResult:
					result = &r
				}
			}
			if ended == nil || ended.State != string(c.state) || ended.Reason != c.auditReason {
				t.Errorf("session.ended %+v, want state %s reason %s", ended, c.state, c.auditReason)
			}
			if c.auditReason != audit.ReasonTokenizationFailed &&
				(result == nil || result.Reason != c.auditReason || result.ResponseCode != c.code) {
				t.Errorf("authorization.result %+v, want reason %s code %q", result, c.auditReason, c.code)
			}
		})
	}
}

func TestSubmitConcurrentIdempotent(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	proc := &fakeProc{authGate: gate, authEntered: entered}
	e := newEnv(t, Config{}, proc)
	s := e.start("c")
	e.complete("c")
	var wg sync.WaitGroup
	views := make([]View, 5)
	errs := make([]error, 5)
	for i := range views {
		wg.Add(1)
		go func() {
			defer wg.Done()
			views[i], errs[i] = s.Submit(context.Background(), "a")
		}()
	}
	<-entered
	// While the processor runs: agent actions wait, digits are ignored.
	if err := s.Restart("a"); !errors.Is(err, ErrInFlight) {
		t.Errorf("restart in flight: %v", err)
	}
	if err := s.Cancel("a"); !errors.Is(err, ErrInFlight) {
		t.Errorf("cancel in flight: %v", err)
	}
	if st := s.View().State; st != StateSubmitting {
		t.Errorf("state %s", st)
	}
	close(gate)
	wg.Wait()
	for i := range views {
		if errs[i] != nil || views[i].State != StateApproved || views[i].Version != views[0].Version {
			t.Fatalf("submit %d: %v %s v%d", i, errs[i], views[i].State, views[i].Version)
		}
	}
	if tok, auth := proc.calls(); tok != 1 || auth != 1 {
		t.Fatalf("processor called %d/%d times", tok, auth)
	}
}

func TestSubmitUnavailable(t *testing.T) {
	down := fmt.Errorf("vault down: %w", ErrUnavailable)
	t.Run("tokenization", func(t *testing.T) {
		proc := &fakeProc{tokErrs: []error{down, context.DeadlineExceeded}}
		e := newEnv(t, Config{}, proc)
		s := e.start("c")
		e.complete("c")
		for range 2 {
			v, err := s.Submit(context.Background(), "a")
			if !errors.Is(err, ErrUnavailable) || v.State != StateComplete {
				t.Fatalf("%v %s", err, v.State)
			}
			s.mu.Lock()
			kept := string(s.fields[0].buf) == visa && string(s.fields[2].buf) == cvv
			s.mu.Unlock()
			if !kept {
				t.Fatal("card data not kept for a resubmit")
			}
		}
		if v, err := s.Submit(context.Background(), "a"); err != nil || v.State != StateApproved {
			t.Fatalf("resubmit: %v %s", err, v.State)
		}
		assertWiped(t, s)
	})
	t.Run("authorization", func(t *testing.T) {
		proc := &fakeProc{authErrs: []error{down}}
		e := newEnv(t, Config{}, proc)
		s := e.start("c")
		e.complete("c")
		v, err := s.Submit(context.Background(), "a")
		if !errors.Is(err, ErrUnavailable) || v.State != StateTokenized {
			t.Fatalf("%v %s", err, v.State)
		}
		if v, err := s.Submit(context.Background(), "a"); err != nil || v.State != StateApproved {
			t.Fatalf("resubmit: %v %s", err, v.State)
		}
		if tok, auth := proc.calls(); tok != 1 || auth != 2 {
			t.Fatalf("calls %d/%d: the token should be reused", tok, auth)
		}
	})
	t.Run("reset after unavailable drops the token", func(t *testing.T) {
		proc := &fakeProc{authErrs: []error{down}}
		e := newEnv(t, Config{}, proc)
		s := e.start("c")
		e.complete("c")
		_, _ = s.Submit(context.Background(), "a")
		if err := s.Reset(FieldSecurityCode, "a"); err != nil {
			t.Fatal(err)
		}
		e.keys("c", "123")
		if v, err := s.Submit(context.Background(), "a"); err != nil || v.State != StateApproved {
			t.Fatalf("%v %s", err, v.State)
		}
		if tok, _ := proc.calls(); tok != 2 {
			t.Fatalf("tokenized %d times", tok)
		}
	})
}

// A call end while the PSP runs: an outcome that came back stands; if
// none did, the session is cancelled. Either way the card data is wiped.
func TestCallEndedDuringSubmit(t *testing.T) {
	for _, c := range []struct {
		name    string
		authErr error
		state   State
	}{
		{"approved anyway", nil, StateApproved},
		{"psp unavailable", ErrUnavailable, StateCancelled},
	} {
		t.Run(c.name, func(t *testing.T) {
			gate := make(chan struct{})
			entered := make(chan struct{}, 1)
			proc := &fakeProc{authGate: gate, authEntered: entered, authErrs: []error{c.authErr}}
			e := newEnv(t, Config{}, proc)
			s := e.start("c")
			e.complete("c")
			done := make(chan View)
			go func() {
				v, _ := s.Submit(context.Background(), "a")
				done <- v
			}()
			<-entered
			e.m.CallEnded("c")
			if s.View().State != StateSubmitting {
				t.Fatal("call end applied under the processor")
			}
			close(gate)
			v := <-done
			if v.State != c.state {
				t.Fatalf("state %s, want %s", v.State, c.state)
			}
			assertWiped(t, s)
			for _, tr := range e.transitions() {
				if !CanTransition(tr.from, tr.to) {
					t.Errorf("illegal %s → %s", tr.from, tr.to)
				}
			}
		})
	}
}

func TestSubmitContextWhileWaiting(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	proc := &fakeProc{authGate: gate, authEntered: entered}
	e := newEnv(t, Config{}, proc)
	s := e.start("c")
	e.complete("c")
	go func() { _, _ = s.Submit(context.Background(), "a") }()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Submit(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	close(gate)
}
