package capture

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/dtmf"
)

func dtmfDigit(c byte) dtmf.Digit { return dtmf.Digit(c) }

// reasons is every reason code a view may carry.
var reasons = map[string]bool{"": true,
	ReasonLuhn: true, ReasonLength: true, ReasonBrandNotAccepted: true, ReasonUnknownBrand: true,
	ReasonMonth: true, ReasonExpired: true, ReasonTimeout: true, ReasonAttemptsExhausted: true,
	ReasonNotConfigured: true, ReasonCancelled: true, ReasonCallEnded: true, ReasonTransferred: true, ReasonSessionTimeout: true,
	ReasonShutdown: true, ReasonTokenization: true, ReasonAuthorization: true, ReasonInvalidResult: true,
	OutcomeApproved: true, OutcomeDeclined: true, OutcomeFailed: true,
}

// FuzzDigits drives a session with key presses and agent, timer, call and
// processor events. Each byte is one op (see the switch). Invariants: no
// panic, every transition legal, views hold no card data (no run of more
// than 6 digits; expiry, code and extras only "•"; the card number shows
// digits only when valid, at most 6 + 4), ended sessions are wiped.
func FuzzDigits(f *testing.F) {
	f.Add([]byte{4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 11, 1, 2, 2, 8, 7, 3, 9, 25})
	f.Add([]byte{5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 4, 4, 4, 4, 0, 9, 3, 0, 1, 2, 3, 20, 10, 23, 18, 18, 18})
	f.Add([]byte{3, 7, 8, 2, 8, 2, 2, 4, 6, 3, 1, 0, 0, 0, 5, 1, 2, 2, 9, 26, 1, 2, 3, 4, 25, 25, 28, 29, 4, 17})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 2000 {
			return
		}
		e := newEnv(t, Config{ExtraFields: []ExtraField{{Name: "postcode", MinDigits: 2, MaxDigits: 4}}}, &fakeProc{})
		proc := e.m.proc.(*fakeProc)
		s := e.start("c")
		check := func() {
			v := s.View()
			checkView(t, v)
			if v.State.Final() {
				assertWiped(t, s)
			}
		}
		for _, op := range ops {
			switch op %= 32; {
			case op < 16:
				e.m.Digit("c", dtmf.Digit(dtmf.Digits[op]), e.clk.advance(50*time.Millisecond))
			case op == 16:
				e.m.Tick(e.clk.advance(time.Second))
			case op == 17:
				e.m.Tick(e.clk.advance(11 * time.Second))
			case op == 18:
				e.m.Tick(e.clk.advance(61 * time.Second))
			case op == 19:
				e.m.Tick(e.clk.advance(11 * time.Minute))
			case op == 20:
				_ = s.Reset(FieldCardNumber, "a")
			case op == 21:
				_ = s.Reset(FieldExpiry, "a")
			case op == 22:
				_ = s.Reset(FieldSecurityCode, "a")
			case op == 23:
				_ = s.Restart("a")
			case op == 24:
				_ = s.Cancel("a")
			case op == 25:
				v, _ := s.Submit(context.Background(), "a")
				checkView(t, v)
			case op == 26:
				proc.authErrs = append(proc.authErrs, ErrUnavailable)
			case op == 27:
				proc.tokErrs = append(proc.tokErrs, ErrUnavailable)
			case op == 28:
				e.m.CallEnded("c")
			case op == 29:
				if ns, err := e.m.Start("c", testReq, "a"); err == nil {
					s = ns
				}
			default:
				e.m.Digit("other", '4', e.clk.advance(time.Millisecond))
			}
			check()
		}
		for _, tr := range e.transitions() {
			if !CanTransition(tr.from, tr.to) {
				t.Fatalf("illegal transition %s → %s", tr.from, tr.to)
			}
		}
	})
}

func checkView(t *testing.T, v View) {
	t.Helper()
	if !v.State.Known() || !reasons[v.Reason] {
		t.Fatalf("state %q reason %q", v.State, v.Reason)
	}
	for _, f := range v.Fields {
		if !reasons[f.Error] {
			t.Fatalf("field error %q", f.Error)
		}
		digits := 0
		for _, r := range f.Masked {
			switch {
			case r >= '0' && r <= '9':
				digits++
			case string(r) != dot:
				t.Fatalf("mask %q", f.Masked)
			}
		}
		if digits > 0 && (f.Name != FieldCardNumber || !f.Valid || digits > 10) {
			t.Fatalf("field %s shows %d digits: %q", f.Name, digits, f.Masked)
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	run := 0
	for _, c := range []byte(strings.ReplaceAll(string(b), v.ID, "")) { // the id is random hex
		if c >= '0' && c <= '9' {
			run++
			if run > 6 {
				t.Fatalf("digit run in view: %s", b)
			}
			continue
		}
		run = 0
	}
}
