package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/sip/caller"
	"github.com/tonevault/tonevault/sip/caller/callertest"
	"github.com/tonevault/tonevault/test/vaultserver"
)

// The faults of issue 13 ("Fail closed and leave nothing behind") that
// take the whole deployment: Vault sealed or killed during a submit, the
// acquirer dropping the connection or answering garbage once the 0100
// has left, and the gateway killed in the middle of a call. Each ends with
// nothing lost: a reversal where one is due, a trail that verifies and no
// card data in any output.

// psp-sim's fault cards (psp/sim/rules.go).
var (
	visaDisconnect = card{pan: "4000000000000127", expiry: "1230", cvv: "737"}
	visaGarbage    = card{pan: "4000000000000135", expiry: "1230", cvv: "737"}
	visaNoCode     = card{pan: "4000000000000143", expiry: "1230", cvv: "737"}
)

// reasonOf is the reason a payment's view gives for its outcome.
func reasonOf(v view) string {
	if v.Result != nil && v.Result.Reason != "" {
		return v.Result.Reason
	}
	return v.Reason
}

// TestPSPFaultAfterRequest: the acquirer gets the 0100 and then drops the
// connection, answers with bytes that are not a message, or answers an
// 0110 without a response code. Each time the submit ends the payment
// failed with a reason that says which (the garbage is unreadable, so the
// request runs out of time), the reversal written ahead of the 0100 goes
// out (after the reconnection and sign-on when the connection dropped)
// and the acquirer acknowledges it; the trail has the result and the
// reversal with the same reason and verifies; no approval came of it, the
// reversal queue is empty and nothing holds card data. (No answer at all
// is TestPaymentPSPTimeout and TestReversalAudited.)
func TestPSPFaultAfterRequest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		card   card
		reason audit.Reason
	}{
		{"connection dropped", visaDisconnect, audit.ReasonPSPConnectionLost},
		{"garbage answer", visaGarbage, audit.ReasonPSPTimeout},
		{"answer without response code", visaNoCode, audit.ReasonPSPBadResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, stackOptions{pspTimeout: 3 * time.Second})
			call, v, _ := s.captureCard(t, tc.card, caller.RFC4733)
			before := s.sim.Stats()
			v = decodeView(t, s.api.submit(t, v.ID), 200)
			if v.State != "failed" || reasonOf(v) != string(tc.reason) || v.Result == nil || v.Result.AuthCode != "" {
				t.Fatalf("submit: %s %q %+v; want failed %s without an auth code", v.State, reasonOf(v), v.Result, tc.reason)
			}
			waitFor(t, "the reversal acknowledged by the acquirer", 60*time.Second, func() bool {
				return len(s.sim.Stats().ReversedSTANs) == 1
			})
			st := s.sim.Stats()
			if requests := st.Approved + st.Declined + st.NoAnswer + st.Disconnects + st.Garbled; requests != 1 || st.Approved != 0 {
				t.Errorf("acquirer %+v: want one 0100, not approved", st)
			}
			switch tc.card {
			case visaDisconnect:
				// One sign-on per connection: the reversal had to wait
				// for a new one.
				if st.Disconnects != 1 || st.SignOns <= before.SignOns {
					t.Errorf("acquirer %+v (before the submit %+v): want the connection dropped and signed on again", st, before)
				}
			default:
				if st.Garbled != 1 {
					t.Errorf("acquirer %+v: want one garbled answer", st)
				}
			}
			s.hangup(t, call)
			recs := s.finish(t)
			var results, reversed []audit.Record
			for _, r := range recs {
				switch {
				case r.PaymentID == v.ID && r.Event == audit.EventAuthorizationResult:
					results = append(results, r)
				case r.Event == audit.EventAuthorizationReversed:
					reversed = append(reversed, r)
				}
			}
			if len(results) != 1 || results[0].Outcome != audit.Failure || results[0].Reason != tc.reason {
				t.Errorf("authorization.result records %+v; want one failure %s", results, tc.reason)
			}
			if len(reversed) != 1 || reversed[0].STAN != st.ReversedSTANs[0] || reversed[0].Reason != tc.reason || reversed[0].Outcome != audit.Success {
				t.Errorf("authorization.reversed records %+v; want one of STAN %s, reason %s", reversed, st.ReversedSTANs[0], tc.reason)
			}
			requireEvents(t, paymentEvents(recs, v.ID), audit.EventCardDataWiped, audit.EventSessionEnded)
			if left := s.queuedReversals(t); len(left) != 0 {
				t.Errorf("reversal queue after the acknowledgement: %+v", left)
			}
			assertStoreHoldsNo(t, s, tc.card.pan)
			assertNoLeaks(t, s.rec, tc.card, v.Result.Token, v.field("card_number").Masked)
		})
	}
}

// submitAsync posts submit from another goroutine (which may not end the
// test) and hands back the answer.
func (s *stack) submitAsync(id string) <-chan response {
	out := make(chan response, 1)
	base := s.api.base
	go func() {
		req, _ := http.NewRequest("POST", base+"/v1/payments/"+id+"/submit", nil)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		res, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
		if err != nil {
			out <- response{code: -1, body: []byte(err.Error())}
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		s.rec.add("api POST submit (async)", b)
		out <- response{code: res.StatusCode, header: res.Header, body: b}
	}()
	return out
}

// TestVaultFailsDuringSubmit: Vault is sealed (sys/seal), or killed with
// SIGKILL, while a submit is between tokenization and authorization: the
// card is tokenized and the acquirer holds the 0100 (a slow answer). That
// payment needs Vault no more and is approved. The next payment on the
// call is submitted while Vault is away: 503 problem+json with
// Retry-After, and the payment stays complete with its card kept for
// another submit (capture.ErrUnavailable), the acquirer not asked. Once
// Vault is back (unsealed; restarted and unsealed), the same submit is
// approved. The acquirer saw one authorization per payment, the trail has
// the refused tokenization and verifies, and nothing holds card data.
func TestVaultFailsDuringSubmit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		down, up func(*vaultserver.Server)
	}{
		{"sealed", (*vaultserver.Server).Seal, (*vaultserver.Server).Unseal},
		{"killed", (*vaultserver.Server).Kill, (*vaultserver.Server).Restart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := visaApproved
			s := newStack(t, stackOptions{persistentVault: true, pspTimeout: 20 * time.Second, pspSlowDelay: 8 * time.Second})
			call := s.dial(t)
			callID := s.api.answeredCall(t)

			// An amount ending in 0202: psp-sim answers it late.
			first := decodeView(t, s.api.do(t, "POST", "/v1/calls/"+callID+"/payments",
				`{"amount":10202,"currency":"GBP","merchant_reference":"order-slow"}`,
				map[string]string{"Idempotency-Key": "idem-order-slow"}), 201)
			typeCard(t, call, c.keys(), caller.RFC4733)
			s.api.waitState(t, first.ID, 30*time.Second, "complete")
			answer := s.submitAsync(first.ID)
			waitFor(t, "the acquirer holding the first authorization", 30*time.Second, func() bool { return s.sim.Stats().Slow == 1 })
			tc.down(s.vault)
			if v := s.api.payment(t, first.ID); v.State != "submitting" {
				t.Fatalf("the first payment is %s once Vault is %s, want still submitting: Vault did not go away mid-submit", v.State, tc.name)
			}
			var r response
			select {
			case r = <-answer:
			case <-time.After(90 * time.Second):
				t.Fatal("the first submit did not end")
			}
			first = decodeView(t, r, 200)
			if first.State != "approved" || first.Result == nil || first.Result.AuthCode == "" {
				t.Fatalf("the submit Vault went away from: %s %q %+v; want approved (its card was tokenized)", first.State, reasonOf(first), first.Result)
			}
			if st := s.sim.Stats(); st.Approved != 1 {
				t.Fatalf("acquirer %+v: want one approval", st)
			}

			second := s.api.startPayment(t, callID, "order-vault-"+tc.name)
			typeCard(t, call, c.keys(), caller.RFC4733)
			s.api.waitState(t, second.ID, 30*time.Second, "complete")
			r = s.api.submit(t, second.ID)
			if r.code != 503 || r.header.Get("Content-Type") != "application/problem+json" || r.header.Get("Retry-After") == "" {
				t.Fatalf("submit with Vault %s: %d %s Retry-After %q: %s; want 503 problem+json with Retry-After",
					tc.name, r.code, r.header.Get("Content-Type"), r.header.Get("Retry-After"), r.body)
			}
			if v := s.api.payment(t, second.ID); v.State != "complete" || v.field("card_number").Entered != len(c.pan) || !v.field("security_code").Valid {
				t.Fatalf("after the 503 the payment is %s (reason %q) with %+v; want complete with the card kept", v.State, v.Reason, v.Fields)
			}
			if st := s.sim.Stats(); st.Approved+st.Declined+st.NoAnswer != 1 {
				t.Errorf("the acquirer was asked while Vault was %s: %+v", tc.name, st)
			}

			tc.up(s.vault)
			final := s.submitUntilApproved(t, second.ID, "once Vault is back", 90*time.Second)
			checkToken(t, final.Result.Token, c)
			if st := s.sim.Stats(); st.Approved != 2 || st.Declined+st.NoAnswer != 0 {
				t.Errorf("acquirer %+v: want one approval per payment", st)
			}

			s.hangup(t, call)
			assertAgentHeardNoDigits(t, s.agent)
			recs := s.finish(t)
			refused := false
			for _, r := range recs {
				refused = refused || r.PaymentID == second.ID && r.Event == audit.EventTokenizationResult &&
					r.Outcome == audit.Failure && r.Reason == audit.ReasonUnavailable
			}
			if !refused {
				t.Errorf("the trail has no tokenization.result unavailable for the payment submitted while Vault was %s: %v",
					tc.name, paymentEvents(recs, second.ID))
			}
			for _, id := range []string{first.ID, second.ID} {
				requireEvents(t, paymentEvents(recs, id), audit.EventAuthorizationResult, audit.EventCardDataWiped, audit.EventSessionEnded)
			}
			assertStoreHoldsNo(t, s, c.pan)
			assertNoLeaks(t, s.rec, c, first.Result.Token, final.Result.Token, final.field("card_number").Masked)
		})
	}
}

// pinSIPPorts rewrites the stack's configuration so that the next start
// listens on the SIP ports this gateway has, as a deployment's fixed
// ports do (the tests otherwise take ephemeral ones).
func (s *stack) pinSIPPorts(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, p := range []struct{ trunk, addr string }{{"carrier", s.gw.carrier}, {"platform", s.gw.platform}} {
		old := "    " + p.trunk + ":\n      listen: 127.0.0.1:0\n"
		if p.addr == "" || !strings.Contains(cfg, old) {
			t.Fatalf("cannot pin the %s trunk to %q in:\n%s", p.trunk, p.addr, cfg)
		}
		cfg = strings.Replace(cfg, old, "    "+p.trunk+":\n      listen: "+p.addr+"\n", 1)
	}
	if err := os.WriteFile(s.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// quiet waits until the agent receives no more RTP (two counts 300 ms
// apart agree) and returns how many packets it got.
func quiet(t *testing.T, u *callertest.UAS) int {
	t.Helper()
	last := -1
	waitFor(t, "the agent's stream to stop", 15*time.Second, func() bool {
		n := len(u.Packets())
		if n == last {
			return true
		}
		last = n
		time.Sleep(250 * time.Millisecond)
		return false
	})
	return last
}

// byeStatus is the status a BYE was answered with, from the error of a
// sipgo dialog's Bye (0: no answer).
func byeStatus(err error) int {
	var de sipgo.ErrDialogResponse
	if errors.As(err, &de) && de.Res != nil {
		return de.Res.StatusCode
	}
	if err == nil {
		return 200
	}
	return 0
}

// TestKillMidCall: `tonevault serve` is killed (SIGKILL) in the middle of
// a call with a payment collecting (8 digits typed, no submit), and
// restarted with the same configuration and the same SIP ports (as a
// deployment has). The relay died with the process: the customer types
// the rest of the card and the agent gets not one more packet. The new
// gateway knows no call: it lists none, and the call's two dialogs,
// orphaned at the customer's and the agent's ends, get 481
// Call/Transaction Does Not Exist for their BYEs. The payment reads back failed, gateway_restarted,
// nothing entered, and the trail says so; the trail was continued after
// an unclean stop and verifies; the store and every output hold no card
// data.
func TestKillMidCall(t *testing.T) {
	t.Parallel()
	c := visaApproved
	s := newStack(t, stackOptions{})
	call := s.dial(t)
	callID := s.api.answeredCall(t)
	pay := s.api.startPayment(t, callID, "order-kill-mid-call")
	typeCard(t, call, []byte(c.pan[:8]), caller.RFC4733)
	waitFor(t, "8 digits of the card number", 20*time.Second, func() bool {
		return s.api.payment(t, pay.ID).field("card_number").Entered == 8
	})
	if len(s.agent.Packets()) == 0 {
		t.Fatal("the agent got no audio before the kill: the check below could not fail")
	}

	s.gw.kill(t)
	atKill := quiet(t, s.agent)
	// Restarted at once: the ports it had are free only until another
	// process on this machine takes them.
	s.pinSIPPorts(t)
	carrier, platform := s.gw.carrier, s.gw.platform
	s.gw = startGateway(t, s.cfg, s.gw.trail, s.rec)
	s.api.base = "http://" + s.gw.http
	if s.gw.carrier != carrier || s.gw.platform != platform {
		t.Fatalf("restarted on %s and %s, want %s and %s", s.gw.carrier, s.gw.platform, carrier, platform)
	}
	// The customer types on, into the relay port that died.
	typeCard(t, call, []byte(c.pan[8:]+"#"+c.expiry+"#"+c.cvv+"#"), caller.RFC4733)
	if n := len(s.agent.Packets()); n != atKill {
		t.Errorf("the agent got %d packets after the gateway was killed", n-atKill)
	}
	v := s.api.payment(t, pay.ID)
	if f := v.field("card_number"); v.State != "failed" || v.Reason != "gateway_restarted" || f.Entered != 0 || strings.ContainsAny(f.Masked, "0123456789") {
		t.Errorf("the payment after the restart: %s %q %+v; want failed gateway_restarted, nothing entered", v.State, v.Reason, f)
	}
	var calls struct {
		Calls []json.RawMessage `json:"calls"`
	}
	if r := s.api.do(t, "GET", "/v1/calls", "", nil); r.code != 200 || json.Unmarshal(r.body, &calls) != nil || len(calls.Calls) != 0 {
		t.Errorf("GET /v1/calls after the restart: %d %s; want no call", r.code, r.body)
	}

	// Both ends still hold the call's dialogs; the gateway does not.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if code := byeStatus(s.agent.Dialog(t).Bye(ctx)); code != 481 {
		t.Errorf("the agent's BYE after the restart was answered %d, want 481", code)
	}
	if code := byeStatus(call.Hangup(ctx)); code != 481 {
		t.Errorf("the customer's BYE after the restart was answered %d, want 481", code)
	}
	if n := len(s.agent.Packets()); n != atKill {
		t.Errorf("the agent got %d packets after the gateway was killed", n-atKill)
	}

	recs := s.finish(t)
	unclean, ended := false, false
	for _, r := range recs {
		unclean = unclean || r.Event == audit.EventAuditStarted && r.Reason == audit.ReasonContinuedUnclean
		ended = ended || r.PaymentID == pay.ID && r.Event == audit.EventSessionEnded && r.Reason == audit.ReasonGatewayRestarted
	}
	if !unclean {
		t.Errorf("the trail has no %s %s record", audit.EventAuditStarted, audit.ReasonContinuedUnclean)
	}
	if !ended {
		t.Errorf("the trail does not say the payment ended %s; its events: %v", audit.ReasonGatewayRestarted, paymentEvents(recs, pay.ID))
	}
	assertStoreHoldsNo(t, s, c.pan)
	assertNoLeaks(t, s.rec, c, v.field("card_number").Masked)
}
