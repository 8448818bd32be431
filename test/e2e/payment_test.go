package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/sip/caller"
	"github.com/tonevault/tonevault/store"
)

// dial places the customer's call to the gateway's carrier trunk and
// returns it once answered (the agent UAS answers behind the gateway).
func (s *stack) dial(t *testing.T, headers ...caller.Header) *caller.Call {
	t.Helper()
	call, err := caller.Dial(ctxFor(t, 30*time.Second), caller.Options{
		Target:  "sip:pay@" + s.gw.carrier,
		Headers: headers,
		// Seeded, so a failure can be replayed; presses and gaps fixed at
		// comfortable lengths (Q.24: detect at 40 ms) to keep the run short.
		Timing:   caller.Timing{Seed: 4733, Press: 90 * time.Millisecond, Gap: 110 * time.Millisecond, HashPause: 250 * time.Millisecond},
		Progress: s.rec.writer("caller progress"),
		Verbose:  true,
	})
	if err != nil {
		t.Fatalf("dial %s: %v", s.gw.carrier, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		call.Hangup(ctx)
	})
	return call
}

// typeCard presses keys on the call and wipes them.
func typeCard(t *testing.T, call *caller.Call, keys []byte, mode caller.Mode) {
	t.Helper()
	defer clear(keys)
	if err := call.Type(ctxFor(t, 60*time.Second), keys, mode); err != nil {
		t.Fatalf("typing %s: %v", mode, err)
	}
}

// hangup ends the call from the customer's side and waits for the BYE to
// reach the agent.
func (s *stack) hangup(t *testing.T, call *caller.Call) {
	t.Helper()
	if err := call.Hangup(ctxFor(t, 10*time.Second)); err != nil {
		t.Errorf("hangup: %v", err)
	}
	select {
	case <-s.agent.ByeReceived():
	case <-time.After(15 * time.Second):
		t.Errorf("the agent got no BYE after the customer hung up")
	}
}

// captureCard runs a call up to a complete payment: dial, start the
// payment from the API, follow it over SSE, type the card, wait for all
// three fields to be valid.
func (s *stack) captureCard(t *testing.T, c card, mode caller.Mode) (*caller.Call, view, *sseStream) {
	t.Helper()
	call := s.dial(t)
	callID := s.api.answeredCall(t)
	pay := s.api.startPayment(t, callID, "order-"+mode.String())
	sse := s.api.follow(t, pay.ID)
	typeCard(t, call, c.keys(), mode)
	v := s.api.waitState(t, pay.ID, 30*time.Second, "complete")
	// The API masks with "•" (the OpenAPI example shows "*"): accept
	// either, but exactly BIN + mask + last four.
	wantMask := c.pan[:6] + strings.Repeat("•", len(c.pan)-10) + c.pan[len(c.pan)-4:]
	if f := v.field("card_number"); !f.Valid || strings.ReplaceAll(f.Masked, "*", "•") != wantMask || f.Brand != "visa" {
		t.Errorf("card_number field %+v, want valid visa masked %s", f, wantMask)
	}
	for _, name := range []string{"expiry", "security_code"} {
		if f := v.field(name); !f.Valid || strings.ContainsAny(f.Masked, "0123456789") {
			t.Errorf("%s field %+v, want valid and masked", name, f)
		}
	}
	return call, v, sse
}

// luhnValid reports whether digits pass the Luhn check.
func luhnValid(digits string) bool {
	sum := 0
	for i := range len(digits) {
		d := int(digits[len(digits)-1-i] - '0')
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// checkToken: the configured digits format keeps the first 6 and last 4,
// has the card's length and fails Luhn, so it can never be taken for a
// card number.
func checkToken(t *testing.T, tok string, c card) {
	t.Helper()
	if len(tok) != len(c.pan) || strings.Trim(tok, "0123456789") != "" ||
		tok[:6] != c.pan[:6] || tok[len(tok)-4:] != c.pan[len(c.pan)-4:] || luhnValid(tok) || tok == c.pan {
		t.Errorf("token %q: want %d digits keeping %s…%s and failing Luhn", tok, len(c.pan), c.pan[:6], c.pan[len(c.pan)-4:])
	}
}

// finish stops the gateway (SIGTERM), verifies its audit trail with the
// binary and returns the trail's records.
func (s *stack) finish(t *testing.T) []audit.Record {
	t.Helper()
	s.gw.stop(t)
	s.gw.verifyAudit(t, s.rec)
	s.rec.add("vault server log", []byte(s.vault.Log()))
	f, err := os.Open(s.gw.trail)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []audit.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line is not a record: %v", err)
		}
		recs = append(recs, r)
	}
	return recs
}

// paymentEvents are the trail's events for one payment, in order.
func paymentEvents(recs []audit.Record, paymentID string) []audit.Event {
	var ev []audit.Event
	for _, r := range recs {
		if r.PaymentID == paymentID {
			ev = append(ev, r.Event)
		}
	}
	return ev
}

func requireEvents(t *testing.T, got []audit.Event, want ...audit.Event) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("audit trail for the payment lacks %s; has %v", w, got)
		}
	}
}

func TestPaymentApproved(t *testing.T) {
	for _, mode := range []caller.Mode{caller.InBand, caller.RFC4733, caller.Info} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			c := visaApproved
			s := newStack(t, stackOptions{})
			call, v, sse := s.captureCard(t, c, mode)

			v = decodeView(t, s.api.submit(t, v.ID), 200)
			if v.State != "approved" || v.Result == nil || v.Result.Outcome != "approved" || v.Result.AuthCode == "" {
				t.Fatalf("submit: state %q result %+v, want approved with an auth code", v.State, v.Result)
			}
			checkToken(t, v.Result.Token, c)
			if again := s.api.payment(t, v.ID); again.State != "approved" || again.Result == nil || again.Result.Token != v.Result.Token {
				t.Errorf("GET after submit: %s %+v", again.State, again.Result)
			}
			states := sse.wait(t)
			if !isSubsequence([]string{"collecting", "complete", "approved"}, states) {
				t.Errorf("SSE states %v, want collecting, complete, approved in order", states)
			}
			if st := s.sim.Stats(); st.Approved != 1 {
				t.Errorf("acquirer stats %+v, want one approval", st)
			}

			s.hangup(t, call)
			assertAgentHeardNoDigits(t, s.agent)
			recs := s.finish(t)
			requireEvents(t, paymentEvents(recs, v.ID),
				audit.EventSessionStarted, audit.EventFieldCompleted, audit.EventTokenizationResult,
				audit.EventAuthorizationResult, audit.EventCardDataWiped, audit.EventSessionEnded)
			assertNoLeaks(t, s.rec, c, v.Result.Token, v.field("card_number").Masked)
		})
	}
}

func TestPaymentDeclined(t *testing.T) {
	t.Parallel()
	c := visaDeclined
	s := newStack(t, stackOptions{})
	call, v, sse := s.captureCard(t, c, caller.RFC4733)
	v = decodeView(t, s.api.submit(t, v.ID), 200)
	if v.State != "declined" || v.Result == nil || v.Result.Outcome != "declined" || v.Result.ResponseCode != "05" || v.Result.Reason == "" {
		t.Fatalf("submit: state %q result %+v, want declined 05 with a reason", v.State, v.Result)
	}
	t.Logf("declined: reason %q, response code %s", v.Result.Reason, v.Result.ResponseCode)
	if st := sse.wait(t); !isSubsequence([]string{"complete", "declined"}, st) {
		t.Errorf("SSE states %v", st)
	}
	s.hangup(t, call)
	assertAgentHeardNoDigits(t, s.agent)
	recs := s.finish(t)
	requireEvents(t, paymentEvents(recs, v.ID), audit.EventAuthorizationResult, audit.EventCardDataWiped, audit.EventSessionEnded)
	tok := ""
	if v.Result != nil {
		tok = v.Result.Token
	}
	assertNoLeaks(t, s.rec, c, tok, v.field("card_number").Masked)
}

func TestPaymentPSPTimeout(t *testing.T) {
	t.Parallel()
	c := visaNoAnswer
	s := newStack(t, stackOptions{pspTimeout: 2 * time.Second})
	call, v, _ := s.captureCard(t, c, caller.RFC4733)
	v = decodeView(t, s.api.submit(t, v.ID), 200)
	reason := v.Reason
	if v.Result != nil && v.Result.Reason != "" {
		reason = v.Result.Reason
	}
	if v.State != "failed" || reason != "psp_timeout" {
		t.Fatalf("submit: state %q reason %q result %+v, want failed psp_timeout", v.State, v.Reason, v.Result)
	}
	// The connector reverses the unanswered authorization by itself.
	waitFor(t, "the reversal at the acquirer", 30*time.Second, func() bool { return s.sim.Stats().Reversals >= 1 })
	if st := s.sim.Stats(); st.NoAnswer != 1 || len(st.ReversedSTANs) != 1 {
		t.Errorf("acquirer stats %+v, want one unanswered authorization and its reversal", st)
	}
	s.hangup(t, call)
	recs := s.finish(t)
	requireEvents(t, paymentEvents(recs, v.ID), audit.EventAuthorizationResult, audit.EventCardDataWiped, audit.EventSessionEnded)
	tok := ""
	if v.Result != nil {
		tok = v.Result.Token
	}
	assertNoLeaks(t, s.rec, c, tok, v.field("card_number").Masked)
}

func TestVaultDownThenBack(t *testing.T) {
	t.Parallel()
	c := visaApproved
	s := newStack(t, stackOptions{persistentVault: true})
	call, v, _ := s.captureCard(t, c, caller.RFC4733)

	s.vault.Stop()
	r := s.api.submit(t, v.ID)
	if r.code != 503 || r.header.Get("Content-Type") != "application/problem+json" || r.header.Get("Retry-After") == "" {
		t.Fatalf("submit with Vault down: %d %s Retry-After %q: %s; want 503 problem+json with Retry-After",
			r.code, r.header.Get("Content-Type"), r.header.Get("Retry-After"), r.body)
	}
	if got := s.api.payment(t, v.ID); got.State != "complete" {
		t.Fatalf("after the 503 the payment is %s (reason %q), want still complete", got.State, got.Reason)
	}
	if st := s.sim.Stats(); st.Approved+st.Declined+st.NoAnswer != 0 {
		t.Errorf("the acquirer was asked while Vault was down: %+v", st)
	}

	s.vault.Restart()
	// The gateway's Vault client may need a moment to reconnect: every
	// answer until then must be the same clean 503.
	final := s.submitUntilApproved(t, v.ID, "after Vault came back", 60*time.Second)
	checkToken(t, final.Result.Token, c)
	s.hangup(t, call)
	recs := s.finish(t)
	requireEvents(t, paymentEvents(recs, v.ID), audit.EventAuthorizationResult, audit.EventCardDataWiped)
	assertNoLeaks(t, s.rec, c, final.Result.Token, v.field("card_number").Masked)
}

func TestHangupMidCapture(t *testing.T) {
	t.Parallel()
	c := visaApproved
	s := newStack(t, stackOptions{})
	call := s.dial(t)
	callID := s.api.answeredCall(t)
	pay := s.api.startPayment(t, callID, "order-hangup")
	sse := s.api.follow(t, pay.ID)
	typeCard(t, call, []byte(c.pan[:8]), caller.RFC4733)
	waitFor(t, "8 digits of the card number", 20*time.Second, func() bool {
		return s.api.payment(t, pay.ID).field("card_number").Entered == 8
	})
	s.hangup(t, call)
	v := s.api.waitState(t, pay.ID, 20*time.Second, "cancelled")
	t.Logf("after hangup: %s, reason %q", v.State, v.Reason)
	if f := v.field("card_number"); f.Entered != 0 || strings.ContainsAny(f.Masked, "0123456789") {
		t.Errorf("card_number after hangup: %+v, want wiped", f)
	}
	if st := sse.wait(t); len(st) == 0 || st[len(st)-1] != "cancelled" {
		t.Errorf("SSE states %v, want to end cancelled", st)
	}
	recs := s.finish(t)
	requireEvents(t, paymentEvents(recs, pay.ID), audit.EventCardDataWiped, audit.EventSessionEnded)
	assertNoLeaks(t, s.rec, c, v.field("card_number").Masked)
}

// isSubsequence reports whether want appears in got in order.
func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// TestAgentLegCheckCanFail shows that the agent-leg check of the tests
// above can fail on the real product: with policy capture-only and no
// payment running, the gateway forwards the customer's tones by design,
// and every detector must then find every key press.
func TestAgentLegCheckCanFail(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{media: "  policy: capture-only"})
	call := s.dial(t)
	keys := visaApproved.keys()
	n := len(keys)
	typeCard(t, call, keys, caller.InBand)
	s.hangup(t, call)
	agentDigits(t, s.agent, func(t *testing.T, name string, got int) {
		if got != n {
			t.Errorf("%s found %d digits on an unmasked agent leg, want all %d", name, got, n)
		}
	})
}

// TestReversalSurvivesRestart: the acquirer never answers the
// authorization and then ignores the reversal; the gateway is stopped
// with the reversal still queued in its store, and after a restart with
// the same store it delivers it.
func TestReversalSurvivesRestart(t *testing.T) {
	t.Parallel()
	c := visaNoAnswer
	s := newStack(t, stackOptions{pspTimeout: 2 * time.Second})
	s.sim.SetIgnoreReversals(true)
	_, v, _ := s.captureCard(t, c, caller.RFC4733)
	v = decodeView(t, s.api.submit(t, v.ID), 200)
	if v.State != "failed" {
		t.Fatalf("submit: %s %q %+v, want failed", v.State, v.Reason, v.Result)
	}
	waitFor(t, "the (ignored) reversal at the acquirer", 30*time.Second, func() bool { return s.sim.Stats().Reversals >= 1 })
	s.gw.stop(t)
	queued := s.queuedReversals(t)
	if len(queued) != 1 {
		t.Fatalf("reversal queue after stop: %+v, want one queued reversal", queued)
	}
	// Kept now: the gateway removes it once the acquirer answers.
	s.rec.add("queued reversal", fmt.Appendf(nil, "%+v", queued[0]))
	if st := s.sim.Stats(); len(st.ReversedSTANs) != 0 {
		t.Fatalf("acknowledged reversals before the restart: %v", st.ReversedSTANs)
	}

	s.sim.SetIgnoreReversals(false)
	s.gw = startGateway(t, s.cfg, s.gw.trail, s.rec)
	waitFor(t, "the reversal delivered after the restart", 60*time.Second, func() bool { return len(s.sim.Stats().ReversedSTANs) == 1 })
	if got := s.sim.Stats().ReversedSTANs[0]; got != queued[0].STAN {
		t.Errorf("reversed STAN %s, queued %s", got, queued[0].STAN)
	}
	recs := s.finish(t)
	if left := s.queuedReversals(t); len(left) != 0 {
		t.Errorf("reversal queue after the acknowledgement: %+v", left)
	}
	ev := paymentEvents(recs, v.ID)
	requireEvents(t, ev, audit.EventAuthorizationResult, audit.EventCardDataWiped)
	t.Logf("payment audit events: %v", ev)
	tok := ""
	if v.Result != nil {
		tok = v.Result.Token
	}
	assertNoLeaks(t, s.rec, c, tok, v.field("card_number").Masked)
}

// queuedReversals opens the stopped gateway's store and lists its
// reversal queue.
func (s *stack) queuedReversals(t *testing.T) []store.Reversal {
	t.Helper()
	st := s.openStore(t)
	rs, err := st.ListReversals(ctxFor(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestReversalAudited: a reversal is a security-relevant money movement
// (DESIGN.md invariant 6), and package audit defines
// authorization.reversed for it, but nothing in the gateway appends it:
// psp's connector has no audit hook. This test fails until it does.
func TestReversalAudited(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{pspTimeout: 2 * time.Second})
	call, v, _ := s.captureCard(t, visaNoAnswer, caller.RFC4733)
	if v = decodeView(t, s.api.submit(t, v.ID), 200); v.State != "failed" {
		t.Fatalf("submit: %s, want failed", v.State)
	}
	waitFor(t, "the reversal acknowledged by the acquirer", 30*time.Second, func() bool { return len(s.sim.Stats().ReversedSTANs) == 1 })
	s.hangup(t, call)
	recs := s.finish(t)
	found := false
	for _, r := range recs {
		found = found || r.Event == audit.EventAuthorizationReversed
	}
	if !found {
		t.Errorf("the acquirer acknowledged a reversal, but the audit trail has no %s record (events of the payment: %v)",
			audit.EventAuthorizationReversed, paymentEvents(recs, v.ID))
	}
	tok := ""
	if v.Result != nil {
		tok = v.Result.Token
	}
	assertNoLeaks(t, s.rec, visaNoAnswer, tok, v.field("card_number").Masked)
}

// submitUntilApproved submits payment id again as an agent would while
// the answer is a 503 problem (Vault or the trail not back yet), for at
// most within, and requires the approval that must come then.
func (s *stack) submitUntilApproved(t *testing.T, id, when string, within time.Duration) view {
	t.Helper()
	var final view
	waitFor(t, "an approval "+when, within, func() bool {
		r := s.api.submit(t, id)
		switch r.code {
		case 200:
			final = decodeView(t, r, 200)
			return true
		case 503:
			if r.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("503 without problem+json: %s", r.body)
			}
			time.Sleep(500 * time.Millisecond)
			return false
		}
		t.Fatalf("submit %s: %d %s", when, r.code, r.body)
		return false
	})
	if final.State != "approved" || final.Result == nil || final.Result.AuthCode == "" {
		t.Fatalf("%s: state %q result %+v", when, final.State, final.Result)
	}
	return final
}
