package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tonevault/tonevault/api"
	"github.com/tonevault/tonevault/sip/caller"
	"github.com/tonevault/tonevault/store"
)

// hookReceiver is the CRM's webhook endpoint: down (503) until up is
// set, checking every signature, and keeping every attempt.
type hookReceiver struct {
	t      *testing.T
	mu     sync.Mutex
	secret []byte
	rec    *recorder
	up     bool
	// tried: event id → the bodies posted, in order; acked: the ids it
	// answered 200 to.
	tried map[string][][]byte
	acked map[string]bool
}

// newHookReceiver listens on loopback; attach gives it the stack's
// secret and recorder before any webhook can come.
func newHookReceiver(t *testing.T) (*hookReceiver, string) {
	h := &hookReceiver{t: t, tried: map[string][][]byte{}, acked: map[string]bool{}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL
}

func (h *hookReceiver) attach(s *stack) {
	h.mu.Lock()
	h.secret, h.rec = s.webhookSecret, s.rec
	h.mu.Unlock()
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rec.add("webhook received", body)
	if err := api.VerifyWebhook(h.secret, r.Header, body, 5*time.Minute); err != nil {
		h.t.Errorf("webhook %s: %v", r.Header.Get(api.HeaderEventID), err)
	}
	id := r.Header.Get(api.HeaderEventID)
	h.tried[id] = append(h.tried[id], body)
	if !h.up {
		http.Error(w, "receiver down", http.StatusServiceUnavailable)
		return
	}
	h.acked[id] = true
}

func (h *hookReceiver) setUp() {
	h.mu.Lock()
	h.up = true
	h.mu.Unlock()
}

// event returns the first body posted for the event of payment id, its
// id, and whether the receiver acknowledged it.
func (h *hookReceiver) event(paymentID string) (id string, body []byte, acked bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for eid, bodies := range h.tried {
		var ev struct {
			Payment struct {
				ID string `json:"id"`
			} `json:"payment"`
		}
		if json.Unmarshal(bodies[0], &ev) == nil && ev.Payment.ID == paymentID {
			return eid, bodies[0], h.acked[eid]
		}
	}
	return "", nil, false
}

// TestRestartKeepsPayments (issue 14): `tonevault serve` is killed with
// SIGKILL after an approved and a declined payment, with a third payment
// collecting and the CRM's webhook receiver down; restarted with the same
// configuration, it answers for all three: the approved and the declined
// read back byte for byte, the one that was live is failed
// (gateway_restarted); every webhook not delivered is delivered, with the
// event id it had before; an idempotent retry of the approved payment's
// start returns the first answer and a retried submit its outcome, and
// the acquirer saw one authorization of each card; the payments are
// found by call and by the call's correlation header, a page at a time.
// Neither the store nor anything else holds a card number.
func TestRestartKeepsPayments(t *testing.T) {
	t.Parallel()
	testRestartKeepsPayments(t, false)
}

// TestRestartKeepsPaymentsPostgres is TestRestartKeepsPayments with the
// store in PostgreSQL: a cluster's store, which a restarted node finds
// as it left it, by its node name.
func TestRestartKeepsPaymentsPostgres(t *testing.T) {
	t.Parallel()
	testRestartKeepsPayments(t, true)
}

func testRestartKeepsPayments(t *testing.T, postgres bool) {
	hooks, url := newHookReceiver(t)
	s := newStack(t, stackOptions{webhook: url, postgres: postgres})
	hooks.attach(s)
	const interaction = "crm-case-1414"
	call := s.dial(t, caller.Header{Name: "X-Interaction-ID", Value: interaction})
	callID := s.api.answeredCall(t)

	// pay takes one payment on the call to its outcome and returns the
	// raw answers to its start and to a GET after it.
	pay := func(c card, ref string) (start, final []byte, v view) {
		t.Helper()
		body := fmt.Sprintf(`{"amount":1999,"currency":"GBP","merchant_reference":%q}`, ref)
		r := s.api.do(t, "POST", "/v1/calls/"+callID+"/payments", body, map[string]string{"Idempotency-Key": "idem-" + ref})
		v = decodeView(t, r, 201)
		typeCard(t, call, c.keys(), caller.RFC4733)
		s.api.waitState(t, v.ID, 30*time.Second, "complete")
		v = decodeView(t, s.api.submit(t, v.ID), 200)
		r2 := s.api.do(t, "GET", "/v1/payments/"+v.ID, "", nil)
		return r.body, r2.body, v
	}
	_, declinedBody, declined := pay(visaDeclined, "order-declined")
	approvedStart, approvedBody, approved := pay(visaApproved, "order-approved")
	if declined.State != "declined" || approved.State != "approved" {
		t.Fatalf("payments ended %s and %s, want declined and approved", declined.State, approved.State)
	}
	live := s.api.startPayment(t, callID, "order-live")
	typeCard(t, call, []byte(visaApproved.pan[:6]), caller.RFC4733)
	s.api.waitState(t, live.ID, 10*time.Second, "collecting")

	// GET /v1/calls/{id} shows the live payment.
	var c struct {
		Payment *view `json:"payment"`
	}
	if r := s.api.do(t, "GET", "/v1/calls/"+callID, "", nil); r.code != 200 || json.Unmarshal(r.body, &c) != nil || c.Payment == nil || c.Payment.ID != live.ID {
		t.Errorf("GET /v1/calls/%s: %d %s; want its live payment %s", callID, r.code, r.body, live.ID)
	}

	// The receiver is down: both outcomes were tried, none delivered.
	waitFor(t, "both webhooks tried", 30*time.Second, func() bool {
		a, _, _ := hooks.event(approved.ID)
		d, _, _ := hooks.event(declined.ID)
		return a != "" && d != ""
	})
	approvedEvent, approvedHook, _ := hooks.event(approved.ID)
	declinedEvent, _, _ := hooks.event(declined.ID)
	before := s.sim.Stats()

	s.gw.kill(t)
	hooks.setUp()
	s.gw = startGateway(t, s.cfg, s.gw.trail, s.rec)
	s.api.base = "http://" + s.gw.http

	for _, p := range []struct {
		id   string
		want []byte
	}{{approved.ID, approvedBody}, {declined.ID, declinedBody}} {
		if r := s.api.do(t, "GET", "/v1/payments/"+p.id, "", nil); r.code != 200 || !bytes.Equal(r.body, p.want) {
			t.Errorf("payment %s after the restart: %d\n%s\nbefore:\n%s", p.id, r.code, r.body, p.want)
		}
	}
	if v := s.api.payment(t, live.ID); v.State != "failed" || v.Reason != "gateway_restarted" || v.field("card_number").Entered != 0 {
		t.Errorf("the payment live at the kill: %s %q %+v; want failed gateway_restarted", v.State, v.Reason, v.field("card_number"))
	}

	waitFor(t, "every webhook delivered after the restart", 60*time.Second, func() bool {
		_, _, a := hooks.event(approved.ID)
		_, _, d := hooks.event(declined.ID)
		_, _, l := hooks.event(live.ID)
		return a && d && l
	})
	if id, body, _ := hooks.event(approved.ID); id != approvedEvent || !bytes.Equal(body, approvedHook) {
		t.Errorf("approved payment's event %s after the restart, %s before (bodies equal: %v)", id, approvedEvent, bytes.Equal(body, approvedHook))
	}
	if id, _, _ := hooks.event(declined.ID); id != declinedEvent {
		t.Errorf("declined payment's event %s after the restart, %s before", id, declinedEvent)
	}
	if _, body, _ := hooks.event(live.ID); !bytes.Contains(body, []byte(`"type":"payment.failed"`)) || !bytes.Contains(body, []byte("gateway_restarted")) {
		t.Errorf("the interrupted payment's webhook: %s", body)
	}

	// Retries after the restart: the first answers, no new authorization.
	r := s.api.do(t, "POST", "/v1/calls/"+callID+"/payments", `{"amount":1999,"currency":"GBP","merchant_reference":"order-approved"}`,
		map[string]string{"Idempotency-Key": "idem-order-approved"})
	if r.code != 201 || r.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(r.body, approvedStart) {
		t.Errorf("idempotent retry after the restart: %d replayed=%q\n%s\nfirst answer:\n%s", r.code, r.header.Get("Idempotent-Replayed"), r.body, approvedStart)
	}
	if r := s.api.submit(t, approved.ID); r.code != 200 || !bytes.Equal(r.body, approvedBody) {
		t.Errorf("submit again after the restart: %d %s", r.code, r.body)
	}
	if st := s.sim.Stats(); st.Approved != 1 || st.Declined != 1 || st.NoAnswer != 0 || st.Approved+st.Declined != before.Approved+before.Declined {
		t.Errorf("acquirer after the retries: %+v (before the kill %+v); want one approval and one decline", st, before)
	}

	// Found by call and by correlation, newest first, a page at a time.
	want := []string{live.ID, approved.ID, declined.ID}
	for _, q := range []string{"call_id=" + callID, "correlation=X-Interaction-ID:" + interaction} {
		var got []string
		cursor := ""
		for range 5 {
			r := s.api.do(t, "GET", "/v1/payments?limit=1&"+q+cursor, "", nil)
			var page struct {
				Payments   []view `json:"payments"`
				NextCursor string `json:"next_cursor"`
			}
			if r.code != 200 || json.Unmarshal(r.body, &page) != nil || len(page.Payments) > 1 {
				t.Fatalf("GET /v1/payments?%s: %d %s", q, r.code, r.body)
			}
			for _, p := range page.Payments {
				got = append(got, p.ID)
			}
			if page.NextCursor == "" {
				break
			}
			cursor = "&cursor=" + page.NextCursor
		}
		if !slices.Equal(got, want) {
			t.Errorf("GET /v1/payments?%s: %v, want %v", q, got, want)
		}
	}

	s.finish(t)
	// The record keeps how each authorization said "telephone order"
	// (Visa: fields 22, 25 and 60.8), for disputes.
	for _, id := range []string{approved.ID, declined.ID} {
		if p := s.storedPayment(t, id); p.EntryMode != "012" || p.ConditionCode != "08" || p.Field60 != "0000000001" || p.Field61 != "" {
			t.Errorf("stored indicators of %s: 22=%q 25=%q 60=%q 61=%q", id, p.EntryMode, p.ConditionCode, p.Field60, p.Field61)
		}
	}
	for _, c := range []card{visaApproved, visaDeclined} {
		assertStoreHoldsNo(t, s, c.pan)
	}
	tok := ""
	if approved.Result != nil {
		tok = approved.Result.Token
	}
	assertNoLeaks(t, s.rec, visaApproved, tok, approved.field("card_number").Masked)
	assertNoLeaks(t, s.rec, visaDeclined, declined.field("card_number").Masked)
}

// storedPayment opens the stopped gateway's store and reads a payment.
func (s *stack) storedPayment(t *testing.T, id string) store.Payment {
	t.Helper()
	st := s.openStore(t)
	p, err := st.GetPayment(ctxFor(t, 30*time.Second), id)
	if err != nil {
		t.Fatalf("payment %s in the store: %v", id, err)
	}
	return p
}
