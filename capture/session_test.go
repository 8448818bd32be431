package capture

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/dtmf"
)

const (
	visa   = "4111111111111111"
	expiry = "1228"
	cvv    = "739"
)

// complete types a whole valid card on call c.
func (e *env) complete(c string) {
	e.keys(c, visa+"#"+expiry+cvv)
}

func TestHappyPath(t *testing.T) {
	var got struct{ pan, exp, cvv []byte }
	proc := &fakeProc{seen: func(c *Card) {
		got.pan, got.exp, got.cvv = slices.Clone(c.PAN.Bytes()), slices.Clone(c.Expiry.Bytes()), slices.Clone(c.CVV.Bytes())
	}}
	e := newEnv(t, Config{}, proc)
	s := e.start("call-1")
	if v := s.View(); v.State != StateCollecting || v.CurrentField != FieldCardNumber || v.Version != 2 {
		t.Fatalf("after start: %+v", v)
	}
	e.complete("call-1")
	v := s.View()
	if v.State != StateComplete {
		t.Fatalf("state %s, want complete", v.State)
	}
	card := fieldView(t, v, FieldCardNumber)
	if card.Masked != "411111••••••1111" || card.Brand != BrandVisa || !card.Valid {
		t.Errorf("card view %+v", card)
	}
	if ex := fieldView(t, v, FieldExpiry); ex.Masked != "••••" || !ex.Valid {
		t.Errorf("expiry view %+v", ex)
	}
	v, err := s.Submit(context.Background(), "agent:alice")
	if err != nil {
		t.Fatal(err)
	}
	if v.State != StateApproved || v.Result == nil || v.Result.Outcome != OutcomeApproved || v.Result.Token != "tok_test" {
		t.Fatalf("after submit: %+v %+v", v, v.Result)
	}
	if string(got.pan) != visa || string(got.exp) != expiry || string(got.cvv) != cvv {
		t.Error("the processor did not get the typed card")
	}
	clear(got.pan)
	clear(got.cvv)
	clear(got.exp)
	assertWiped(t, s)
	// The digits are gone; the masked number stays for the agent.
	if card := fieldView(t, v, FieldCardNumber); card.Masked != "411111••••••1111" || card.Brand != BrandVisa || card.Entered != 0 {
		t.Errorf("card view after the outcome %+v", card)
	}
	if ex := fieldView(t, v, FieldExpiry); ex.Masked != "" {
		t.Errorf("expiry view after the outcome %+v", ex)
	}
	want := []audit.Event{
		audit.EventSessionStarted,
		audit.EventFieldCompleted, audit.EventFieldCompleted, audit.EventFieldCompleted,
		audit.EventTokenizationRequested, audit.EventTokenizationResult,
		audit.EventAuthorizationRequested, audit.EventAuthorizationResult,
		audit.EventCardDataWiped, audit.EventCardDataWiped, audit.EventCardDataWiped, audit.EventSessionEnded,
	}
	if ev := e.sink.events(); !slices.Equal(ev, want) {
		t.Errorf("audit events\n got %v\nwant %v", ev, want)
	}
	recs := e.sink.records()
	if recs[1].MaskedPAN != "411111******1111" || recs[1].Field != "card_number" || recs[1].PaymentID != s.ID() || recs[1].CallID != "call-1" {
		t.Errorf("field.completed record %+v", recs[1])
	}
	if recs[2].Field != "expiry" || recs[3].Field != "security_code" || recs[2].MaskedPAN != "" {
		t.Errorf("field.completed records %+v %+v", recs[2], recs[3])
	}
	for i, f := range []string{"card_number", "expiry", "security_code"} {
		if r := recs[8+i]; r.Field != f || r.Reason != audit.ReasonSessionEnded {
			t.Errorf("card_data.wiped record %+v, want field %s", r, f)
		}
	}
	if r := recs[11]; r.State != "approved" || r.Reason != audit.ReasonApproved || r.Outcome != audit.Success {
		t.Errorf("session.ended record %+v", r)
	}
	if e.m.Active("call-1") {
		t.Error("call still active after the payment")
	}
}

func TestExtraFieldsInSession(t *testing.T) {
	var extra []byte
	proc := &fakeProc{seen: func(c *Card) { extra = slices.Clone(c.Extra["postcode"].Bytes()) }}
	e := newEnv(t, Config{ExtraFields: []ExtraField{{Name: "postcode", MinDigits: 3, MaxDigits: 5}}}, proc)
	s := e.start("c")
	e.complete("c")
	if v := s.View(); v.State != StateCollecting || v.CurrentField != "postcode" {
		t.Fatalf("%s %s", v.State, v.CurrentField)
	}
	e.keys("c", "123#")
	if _, err := s.Submit(context.Background(), "a"); err != nil || string(extra) != "123" {
		t.Fatalf("submit: %v, extra %q", err, extra)
	}
	assertWiped(t, s)
}

func TestKeys(t *testing.T) {
	cases := []struct {
		name    string
		keys    string
		state   State
		cur     FieldName
		entered int
		ignored int
		status  FieldStatus
	}{
		{"A-D ignored and counted", "4A1B1C1D1", StateCollecting, FieldCardNumber, 5, 4, FieldCollecting},
		{"star clears", "41111*", StateCollecting, FieldCardNumber, 0, 0, FieldCollecting},
		{"star then retype", "41111*5555555555554444", StateCollecting, FieldExpiry, 0, 0, FieldCollecting},
		{"hash on empty ignored", "#", StateCollecting, FieldCardNumber, 0, 0, FieldCollecting},
		{"reflex hash after auto end", "5555555555554444#", StateCollecting, FieldExpiry, 0, 0, FieldCollecting},
		{"hash ends a short field", "4111#", StateCollecting, FieldCardNumber, 0, 0, FieldInvalid},
		{"digits after complete ignored", "5555555555554444" + expiry + cvv + "99", StateComplete, "", 0, 0, ""},
		{"invalid byte ignored", "4\x00x", StateCollecting, FieldCardNumber, 1, 0, FieldCollecting},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, Config{}, nil)
			s := e.start("c")
			e.keys("c", c.keys)
			v := s.View()
			if v.State != c.state || v.CurrentField != c.cur || v.IgnoredDigits != c.ignored {
				t.Fatalf("state %s field %q ignored %d", v.State, v.CurrentField, v.IgnoredDigits)
			}
			if c.cur != "" {
				f := fieldView(t, v, c.cur)
				if f.Entered != c.entered || f.Status != c.status {
					t.Fatalf("field %+v", f)
				}
			}
		})
	}
}

func TestAttempts(t *testing.T) {
	for _, max := range []int{1, 2, 3} {
		e := newEnv(t, Config{MaxAttempts: max}, nil)
		s := e.start("c")
		for i := 1; i <= max; i++ {
			e.keys("c", "4111111111111112#") // luhn
			v := s.View()
			f := fieldView(t, v, FieldCardNumber)
			if f.Attempts != i || f.Error != ReasonLuhn || f.Entered != 0 {
				t.Fatalf("max %d attempt %d: %+v", max, i, f)
			}
			if i < max && (v.State != StateCollecting || f.Status != FieldInvalid) {
				t.Fatalf("max %d attempt %d: state %s status %s", max, i, v.State, f.Status)
			}
			if i == max && (v.State != StateFailed || v.Reason != ReasonAttemptsExhausted || f.Status != FieldFailed) {
				t.Fatalf("max %d: state %s reason %s status %s", max, v.State, v.Reason, f.Status)
			}
		}
		assertWiped(t, s)
		// A new session may start on the call.
		if _, err := e.m.Start("c", testReq, "a"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRefusedEntrySwallowed: an entry refused before it is complete
// (month 13 at its second digit, an unknown or refused brand at its first
// digits) takes the rest of what the customer types for it, so that one
// mistake costs one attempt. In keys, 'p' is a pause as long as the
// inter-digit timeout.
func TestRefusedEntrySwallowed(t *testing.T) {
	cases := []struct {
		name     string
		cfg      Config
		keys     string
		field    FieldName // the field checked
		attempts int
		status   FieldStatus
		state    State
	}{
		{"month 13, then the year, then the expiry again", Config{}, visa + "#1330" + expiry, FieldExpiry, 1, FieldValid, StateCollecting},
		{"month 13, the year and #", Config{}, visa + "#1330#" + expiry, FieldExpiry, 1, FieldValid, StateCollecting},
		{"month 13 and # at once", Config{}, visa + "#13#" + expiry, FieldExpiry, 1, FieldValid, StateCollecting},
		{"month 13 and * to start again", Config{}, visa + "#13*" + expiry, FieldExpiry, 1, FieldValid, StateCollecting},
		{"month 13, a pause, the expiry", Config{}, visa + "#13p" + expiry, FieldExpiry, 1, FieldValid, StateCollecting},
		{"month 13, the year, a reflex #", Config{}, visa + "#1330p#" + expiry, FieldExpiry, 1, FieldValid, StateCollecting},
		// The rest is at most what the field can hold: beyond it is a
		// new entry, refused on its own (month 28).
		{"only the rest of the entry", Config{}, visa + "#13" + expiry, FieldExpiry, 2, FieldInvalid, StateCollecting},
		{"refused while swallowing: still one attempt", Config{}, visa + "#1330p", FieldExpiry, 1, FieldInvalid, StateCollecting},
		{"every real attempt counts", Config{}, visa + "#13#13#13#", FieldExpiry, 3, FieldFailed, StateFailed},
		{"unknown brand: the rest of the number", Config{}, "9111111111111111#" + visa + "#", FieldCardNumber, 1, FieldValid, StateCollecting},
		{"unknown brand without #, then a pause", Config{}, "9111111111111111p" + visa + "#", FieldCardNumber, 1, FieldValid, StateCollecting},
		{"brand not accepted", Config{AcceptedBrands: []Brand{BrandVisa}}, "5555555555554444" + visa + "#", FieldCardNumber, 1, FieldValid, StateCollecting},
		{"A-D while swallowing are ignored as ever", Config{}, visa + "#13A30#" + expiry, FieldExpiry, 1, FieldValid, StateCollecting},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.InterDigitTimeout = 5 * time.Second
			e := newEnv(t, cfg, nil)
			s := e.start("c")
			for _, k := range strings.Split(c.keys, "p") {
				e.keys("c", k)
				e.m.Tick(e.clk.advance(5 * time.Second))
			}
			v := s.View()
			f := fieldView(t, v, c.field)
			if f.Attempts != c.attempts || f.Status != c.status || v.State != c.state {
				t.Fatalf("%s: attempts %d status %s, session %s; want %d %s %s", c.field, f.Attempts, f.Status, v.State, c.attempts, c.status, c.state)
			}
		})
	}
}

func TestAttemptsArePerField(t *testing.T) {
	e := newEnv(t, Config{MaxAttempts: 2}, nil)
	s := e.start("c")
	e.keys("c", "4111111111111112#"+visa+"#"+"13#"+expiry+cvv)
	v := s.View()
	if v.State != StateComplete {
		t.Fatalf("state %s", v.State)
	}
	if a := fieldView(t, v, FieldCardNumber).Attempts; a != 1 {
		t.Errorf("card attempts %d", a)
	}
	if f := fieldView(t, v, FieldExpiry); f.Attempts != 1 || f.Error != "" {
		t.Errorf("expiry %+v", f)
	}
}

func TestDigitFiltering(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	// Before any session: nothing happens, nothing breaks.
	e.m.Digit("c", '4', e.clk.now())
	s := e.start("c")
	start := e.clk.now()
	e.m.Digit("c", '4', start.Add(-time.Second)) // pressed before the session
	e.m.Digit("c", '4', start)                   // not after it
	e.m.Digit("other", '4', start.Add(time.Second))
	e.m.Digit("", '4', start.Add(time.Second))
	if n := fieldView(t, s.View(), FieldCardNumber).Entered; n != 0 {
		t.Fatalf("%d digits taken", n)
	}
	e.m.Digit("c", '4', start.Add(time.Nanosecond))
	if n := fieldView(t, s.View(), FieldCardNumber).Entered; n != 1 {
		t.Fatalf("%d digits taken, want 1", n)
	}
	// Two calls, two sessions: each takes only its own digits.
	s2 := e.start("d")
	e.keys("d", "5555555555554444")
	if fieldView(t, s.View(), FieldCardNumber).Entered != 1 || s2.View().CurrentField != FieldExpiry {
		t.Fatal("digits crossed calls")
	}
}

func TestCallEndedWipes(t *testing.T) {
	for _, typed := range []string{"", "41111111", visa + "#" + expiry, visa + "#" + expiry + cvv} {
		e := newEnv(t, Config{}, nil)
		s := e.start("c")
		e.keys("c", typed)
		s.mu.Lock()
		pan := s.fields[0].buf[:cap(s.fields[0].buf)] // alias: sees the wipe
		s.mu.Unlock()
		e.m.CallEnded("c")
		v := s.View()
		if v.State != StateCancelled || v.Reason != ReasonCallEnded {
			t.Fatalf("%q: %s %s", typed, v.State, v.Reason)
		}
		if !allZero(pan) {
			t.Fatalf("%q: card number not wiped", typed)
		}
		assertWiped(t, s)
		if e.m.Active("c") {
			t.Fatal("still active")
		}
		if err := s.Cancel("a"); !errors.Is(err, ErrFinal) {
			t.Fatalf("cancel after end: %v", err)
		}
		e.m.CallEnded("c") // twice: no effect
		e.m.CallEnded("unknown")
	}
}

func TestAgentActions(t *testing.T) {
	t.Run("reset card number mid-expiry", func(t *testing.T) {
		e := newEnv(t, Config{}, nil)
		s := e.start("c")
		e.keys("c", visa+"#12")
		if err := s.Reset(FieldCardNumber, "agent:alice"); err != nil {
			t.Fatal(err)
		}
		v := s.View()
		if v.CurrentField != FieldCardNumber || fieldView(t, v, FieldExpiry).Entered != 0 ||
			fieldView(t, v, FieldExpiry).Status != FieldPending || fieldView(t, v, FieldCardNumber).Attempts != 0 {
			t.Fatalf("%+v", v)
		}
		assertWiped(t, s)
		e.keys("c", "378282246310005"+expiry+"1234") // amex: the code is 4 digits now
		if s.View().State != StateComplete {
			t.Fatalf("state %s", s.View().State)
		}
	})
	t.Run("reset security code when complete", func(t *testing.T) {
		e := newEnv(t, Config{}, nil)
		s := e.start("c")
		e.complete("c")
		if err := s.Reset(FieldSecurityCode, "agent:alice"); err != nil {
			t.Fatal(err)
		}
		v := s.View()
		if v.State != StateCollecting || v.CurrentField != FieldSecurityCode || !fieldView(t, v, FieldCardNumber).Valid {
			t.Fatalf("%+v", v)
		}
		e.keys("c", "123")
		if s.View().State != StateComplete {
			t.Fatal("not complete again")
		}
	})
	t.Run("reset unknown field", func(t *testing.T) {
		e := newEnv(t, Config{}, nil)
		s := e.start("c")
		if err := s.Reset("pin", "a"); !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	})
	t.Run("restart", func(t *testing.T) {
		e := newEnv(t, Config{}, nil)
		s := e.start("c")
		e.keys("c", "4111111111111112#"+visa+"#"+"12")
		at := e.clk.now()
		if err := s.Restart("agent:alice"); err != nil {
			t.Fatal(err)
		}
		e.m.Digit("c", '4', at) // in flight from before the restart
		v := s.View()
		for _, f := range v.Fields {
			if f.Entered != 0 || f.Attempts != 0 || f.Status == FieldValid {
				t.Fatalf("after restart %+v", f)
			}
		}
		if v.CurrentField != FieldCardNumber {
			t.Fatal(v.CurrentField)
		}
		assertWiped(t, s)
		e.complete("c")
		if s.View().State != StateComplete {
			t.Fatal("not complete after restart")
		}
	})
	t.Run("cancel", func(t *testing.T) {
		e := newEnv(t, Config{}, nil)
		s := e.start("c")
		e.keys("c", "4111")
		if err := s.Cancel("agent:alice"); err != nil {
			t.Fatal(err)
		}
		if v := s.View(); v.State != StateCancelled || v.Reason != ReasonCancelled {
			t.Fatalf("%+v", v)
		}
		assertWiped(t, s)
		for name, err := range map[string]error{
			"reset": s.Reset(FieldCardNumber, "a"), "restart": s.Restart("a"), "cancel": s.Cancel("a"),
		} {
			if !errors.Is(err, ErrFinal) {
				t.Errorf("%s after cancel: %v", name, err)
			}
		}
		if _, err := s.Submit(context.Background(), "a"); !errors.Is(err, ErrFinal) {
			t.Errorf("submit after cancel: %v", err)
		}
	})
}

func TestTimeouts(t *testing.T) {
	cfg := Config{InterDigitTimeout: 5 * time.Second, FieldTimeout: 30 * time.Second, SessionTimeout: 5 * time.Minute}
	t.Run("inter-digit ends a valid field", func(t *testing.T) {
		e := newEnv(t, cfg, nil)
		s := e.start("c")
		e.keys("c", visa)
		e.m.Tick(e.clk.advance(4 * time.Second))
		if s.View().CurrentField != FieldCardNumber {
			t.Fatal("ended before the timeout")
		}
		e.m.Tick(e.clk.advance(time.Second))
		v := s.View()
		if v.CurrentField != FieldExpiry || !fieldView(t, v, FieldCardNumber).Valid {
			t.Fatalf("%+v", v)
		}
	})
	t.Run("inter-digit refuses a partial field", func(t *testing.T) {
		e := newEnv(t, cfg, nil)
		s := e.start("c")
		e.keys("c", "4111")
		e.m.Tick(e.clk.advance(5 * time.Second))
		f := fieldView(t, s.View(), FieldCardNumber)
		if f.Error != ReasonTimeout || f.Attempts != 1 || f.Entered != 0 {
			t.Fatalf("%+v", f)
		}
		assertWiped(t, s)
	})
	t.Run("field timeout with nothing typed", func(t *testing.T) {
		e := newEnv(t, cfg, nil)
		s := e.start("c")
		e.m.Tick(e.clk.advance(29 * time.Second))
		if fieldView(t, s.View(), FieldCardNumber).Attempts != 0 {
			t.Fatal("early")
		}
		e.m.Tick(e.clk.advance(time.Second))
		if f := fieldView(t, s.View(), FieldCardNumber); f.Error != ReasonTimeout || f.Attempts != 1 {
			t.Fatalf("%+v", f)
		}
		// The next attempt has its own 30 s; three timeouts fail the session.
		e.m.Tick(e.clk.advance(30 * time.Second))
		e.m.Tick(e.clk.advance(30 * time.Second))
		if v := s.View(); v.State != StateFailed || v.Reason != ReasonAttemptsExhausted {
			t.Fatalf("%s %s", v.State, v.Reason)
		}
	})
	t.Run("field timeout while typing slowly", func(t *testing.T) {
		e := newEnv(t, cfg, nil)
		s := e.start("c")
		for i := 0; i < 8; i++ {
			e.keys("c", "4")
			e.m.Tick(e.clk.advance(4 * time.Second))
		}
		if f := fieldView(t, s.View(), FieldCardNumber); f.Error != ReasonTimeout || f.Attempts != 1 {
			t.Fatalf("%+v", f)
		}
	})
	t.Run("session timeout", func(t *testing.T) {
		e := newEnv(t, cfg, nil)
		s := e.start("c")
		e.complete("c")
		e.m.Tick(e.clk.advance(5 * time.Minute))
		if v := s.View(); v.State != StateExpired || v.Reason != ReasonSessionTimeout {
			t.Fatalf("%s %s", v.State, v.Reason)
		}
		assertWiped(t, s)
	})
	t.Run("disabled", func(t *testing.T) {
		e := newEnv(t, Config{InterDigitTimeout: -1, FieldTimeout: -1, SessionTimeout: -1}, nil)
		s := e.start("c")
		e.keys("c", "4111")
		e.m.Tick(e.clk.advance(24 * time.Hour))
		if v := s.View(); v.State != StateCollecting || fieldView(t, v, FieldCardNumber).Entered != 4 {
			t.Fatalf("%+v", v)
		}
	})
	t.Run("ended sessions are forgotten after Retain", func(t *testing.T) {
		e := newEnv(t, cfg, nil)
		s := e.start("c")
		_ = s.Cancel("a")
		e.m.Tick(e.clk.advance(59 * time.Minute))
		if _, ok := e.m.Get(s.ID()); !ok {
			t.Fatal("forgotten early")
		}
		e.m.Tick(e.clk.advance(2 * time.Minute))
		if _, ok := e.m.Get(s.ID()); ok {
			t.Fatal("kept")
		}
	})
}

func TestStart(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	s := e.start("c")
	if _, err := e.m.Start("c", testReq, "a"); !errors.Is(err, ErrCallBusy) {
		t.Fatalf("second start: %v", err)
	}
	if got, ok := e.m.Get(s.ID()); !ok || got != s {
		t.Fatal("Get")
	}
	if !e.m.Active("c") || e.m.Active("d") {
		t.Fatal("Active")
	}
	for _, c := range []struct {
		call string
		req  PaymentRequest
	}{
		{"", testReq},
		{"Call-1", testReq},
		{"c-" + visa, testReq},
		{"c" + strings.Repeat("x", audit.MaxIDLen), testReq},
		{"d", PaymentRequest{Amount: 0, Currency: "GBP"}},
		{"d", PaymentRequest{Amount: 1, Currency: "gbp"}},
		{"d", PaymentRequest{Amount: 1, Currency: "GB"}},
	} {
		if _, err := e.m.Start(c.call, c.req, "a"); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%q %+v: %v", c.call, c.req, err)
		}
	}
	e.keys("c", "4111")
	e.m.Close()
	if v := s.View(); v.State != StateCancelled || v.Reason != ReasonShutdown {
		t.Fatalf("after close: %s %s", v.State, v.Reason)
	}
	assertWiped(t, s)
	if _, err := e.m.Start("x", testReq, "a"); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

func TestManagerGoroutineTicks(t *testing.T) {
	clk := &fakeClock{t: t0}
	m, err := NewManager(Config{SessionTimeout: time.Second}, Options{Audit: newRecSink(t), Now: clk.now, TickInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s, err := m.Start("c", testReq, "a")
	if err != nil {
		t.Fatal(err)
	}
	ch, cancel := s.Subscribe()
	defer cancel()
	clk.advance(time.Second)
	var last View
	for v := range ch { // closed after the final view
		last = v
	}
	if last.State != StateExpired {
		t.Fatalf("state %s", last.State)
	}
}

func TestSubscribe(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	s := e.start("c")
	ch, cancel := s.Subscribe()
	first := <-ch
	if first.Version != s.View().Version {
		t.Fatal("first view is not the current one")
	}
	e.keys("c", "411")
	v := <-ch // latest wins: one view, the newest
	if v.Version != first.Version+3 || fieldView(t, v, FieldCardNumber).Entered != 3 {
		t.Fatalf("version %d entered %d", v.Version, fieldView(t, v, FieldCardNumber).Entered)
	}
	select {
	case v := <-ch:
		t.Fatalf("stale view %d", v.Version)
	default:
	}
	ch2, cancel2 := s.Subscribe()
	cancel2()
	cancel2()
	if _, ok := <-drain(ch2); ok {
		t.Fatal("cancelled subscription still open")
	}
	_ = s.Cancel("a")
	var final View
	for v := range ch {
		final = v
	}
	if final.State != StateCancelled {
		t.Fatalf("final %s", final.State)
	}
	cancel() // after close: no panic
	ch3, _ := s.Subscribe()
	if v, ok := <-ch3; !ok || v.State != StateCancelled {
		t.Fatal("subscribe to an ended session")
	}
	if _, ok := <-ch3; ok {
		t.Fatal("not closed")
	}
}

// drain reads what is buffered and returns the channel.
func drain(ch <-chan View) <-chan View {
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return ch
			}
		default:
			return ch
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, Config{}, &fakeProc{})
	s := e.start("c")
	ch, cancel := s.Subscribe()
	defer cancel()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				e.m.Digit("c", dtmf.Digit("0123456789*#A"[i%13]), e.clk.advance(time.Millisecond))
				if i%50 == 0 {
					_ = s.Reset(FieldExpiry, "a")
				}
				_ = s.View()
				e.m.Tick(e.clk.now())
			}
		}()
	}
	go func() {
		for range ch {
		}
	}()
	wg.Wait()
	for _, tr := range e.transitions() {
		if !CanTransition(tr.from, tr.to) {
			t.Errorf("illegal transition %s → %s", tr.from, tr.to)
		}
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	digits := 0
	for range 1000 {
		id, err := newID()
		if err != nil {
			t.Fatal(err)
		}
		body, ok := strings.CutPrefix(id, "pay_")
		if !ok || len(body) != 24 || strings.Trim(body, "abcdefghijklmnopqrstuvwxyz234567") != "" || !audit.ValidID(id) || seen[id] {
			t.Fatalf("id %q", id)
		}
		seen[id] = true
		digits += strings.IndexAny(body, "234567") + 1
	}
	// Standard base32: its digits turn up (no alphabet without them).
	if digits == 0 {
		t.Error("no digit in 1000 ids")
	}
}

// TestOnActive: the hook hears a capture start before Start returns and
// its end once, whatever ends it, and a new capture on the same call again.
func TestOnActive(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(e *env, s *Session)
	}{
		{"cancel", func(e *env, s *Session) { _ = s.Cancel("agent") }},
		{"call ended", func(e *env, s *Session) { e.m.CallEnded("c-1") }},
		{"expired", func(e *env, s *Session) { e.m.Tick(e.clk.advance(time.Hour)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			clk := &fakeClock{t: t0}
			m, err := NewManager(Config{}, Options{Audit: newRecSink(t), Now: clk.now, TickInterval: -1,
				OnActive: func(call string, on bool) { got = append(got, fmt.Sprintf("%s %v", call, on)) }})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			e := &env{t: t, m: m, clk: clk}
			s := e.start("c-1")
			if fmt.Sprint(got) != "[c-1 true]" {
				t.Fatalf("after Start: %v", got)
			}
			tc.end(e, s)
			_ = s.Cancel("agent") // already final: no second end
			if fmt.Sprint(got) != "[c-1 true c-1 false]" {
				t.Errorf("after end: %v", got)
			}
		})
	}
}
