package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/capture"
)

// pay runs a payment on call to its end on the real capture Manager:
// approved when submit, cancelled otherwise. It returns the final View
// as the API answered it.
func (re *realEnv) pay(t *testing.T, call string, submit bool) []byte {
	t.Helper()
	re.advance(time.Second)
	v := re.startPayment(t, testKey, call)
	re.press(call, testPAN+"#"+testExpiry+testCVV)
	action := "/cancel"
	if submit {
		action = "/submit"
	}
	resp := re.do(t, "POST", "/v1/payments/"+v.ID+action, testKey, nil)
	b := readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", action, resp.StatusCode, b)
	}
	return bytes.TrimSpace(b)
}

func listIDs(t *testing.T, e *testEnv, cred, query string) (ids []string, pages int) {
	t.Helper()
	cursor := ""
	for pages = 1; pages < 20; pages++ {
		q := query
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		resp := e.do(t, "GET", "/v1/payments?"+q, cred, nil)
		b := readBody(t, resp)
		var list paymentList
		if resp.StatusCode != 200 || json.Unmarshal(b, &list) != nil {
			t.Fatalf("GET /v1/payments?%s: %d %s", q, resp.StatusCode, b)
		}
		for _, v := range list.Payments {
			ids = append(ids, v.ID)
		}
		if cursor = list.NextCursor; cursor == "" {
			return ids, pages
		}
	}
	t.Fatal("paging does not end")
	return nil, 0
}

// TestListPayments: payments by call and by correlation header, newest
// first, paged; a widget token sees its own call's only.
func TestListPayments(t *testing.T) {
	re := newRealEnv(t, approver{})
	first := decodeView(t, re.pay(t, "call-1", false))
	second := decodeView(t, re.pay(t, "call-1", true))
	re.advance(time.Second)
	live := re.startPayment(t, testKey, "call-1")
	other := re.startPayment(t, testKey, "call-2")
	want := []string{live.ID, second.ID, first.ID}

	for _, tc := range []struct {
		query string
		want  []string
		pages int
	}{
		{"call_id=call-1", want, 1},
		{"call_id=call-1&limit=1", want, 3},
		{"call_id=call-1&limit=2", want, 2},
		{"correlation=X-Interaction-ID:int-1", want, 1},
		{"correlation=x-interaction-id:int-2", []string{other.ID}, 1},
		{"correlation=X-Interaction-ID:int-2&call_id=call-1", nil, 1},
		{"call_id=call-9", nil, 1},
	} {
		ids, pages := listIDs(t, re.testEnv, testKey, tc.query)
		if !slices.Equal(ids, tc.want) || pages != tc.pages {
			t.Errorf("%s: %v in %d pages, want %v in %d", tc.query, ids, pages, tc.want, tc.pages)
		}
	}
	// A live payment is shown as it is now: the typing is there.
	re.press("call-1", "41")
	resp := re.do(t, "GET", "/v1/payments?call_id=call-1&limit=1", testKey, nil)
	var list paymentList
	if err := json.Unmarshal(readBody(t, resp), &list); err != nil || len(list.Payments) != 1 || list.Payments[0].Fields[0].Entered != 2 {
		t.Errorf("live payment in the list: %+v, %v", list.Payments, err)
	}

	tok := mintFull(t, re.testEnv, testKey, "call-2").Token
	if ids, _ := listIDs(t, re.testEnv, tok, "call_id=call-2"); !slices.Equal(ids, []string{other.ID}) {
		t.Errorf("widget token, its call: %v", ids)
	}
	for _, q := range []string{"call_id=call-1", "correlation=X-Interaction-ID:int-2"} {
		problem(t, re.do(t, "GET", "/v1/payments?"+q, tok, nil), 403)
	}
	for _, q := range []string{"", "limit=1", "call_id=call-1&limit=0", "call_id=call-1&limit=501", "call_id=call-1&cursor=abc", "correlation=int-1"} {
		problem(t, re.do(t, "GET", "/v1/payments?"+q, testKey, nil), 400)
	}
}

// TestCallShowsLivePayment: GET /v1/calls/{id} carries the call's live
// payment, which a CRM that lost its id finds there; none once it ended.
func TestCallShowsLivePayment(t *testing.T) {
	re := newRealEnv(t, approver{})
	v := re.startPayment(t, testKey, "call-1")
	busy := re.do(t, "POST", "/v1/calls/call-1/payments", testKey, `{"amount":1,"currency":"GBP"}`, "Idempotency-Key", "again")
	problem(t, busy, 409)
	var c CallView
	if err := json.Unmarshal(readBody(t, re.do(t, "GET", "/v1/calls/call-1", testKey, nil)), &c); err != nil {
		t.Fatal(err)
	}
	if c.Payment == nil || c.Payment.ID != v.ID || c.Payment.State != capture.StateCollecting {
		t.Fatalf("call's payment: %+v", c.Payment)
	}
	var list callList
	if err := json.Unmarshal(readBody(t, re.do(t, "GET", "/v1/calls", testKey, nil)), &list); err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Calls {
		if (c.ID == "call-1") != (c.Payment != nil) {
			t.Errorf("listed call %s with payment %v", c.ID, c.Payment)
		}
	}
	readBody(t, re.do(t, "POST", "/v1/payments/"+v.ID+"/cancel", testKey, nil))
	c = CallView{}
	if err := json.Unmarshal(readBody(t, re.do(t, "GET", "/v1/calls/call-1", testKey, nil)), &c); err != nil || c.Payment != nil {
		t.Errorf("call after its payment ended: %+v, %v", c.Payment, err)
	}
}

// TestPaymentsAfterRestart: a gateway started again on the store answers
// for the payments of the one before: the same bytes for an ended one, a
// submit that returns the outcome without authorizing again, a cancel
// that is idempotent, refusals for what cannot change, one event on the
// stream, and nothing for another call's widget token.
func TestPaymentsAfterRestart(t *testing.T) {
	before := newRealEnv(t, approver{})
	approved := before.pay(t, "call-1", true)
	cancelled := before.pay(t, "call-2", false)
	av, cv := decodeView(t, approved), decodeView(t, cancelled)
	before.ts.Close()
	before.srv.Close()

	auth := &countingApprover{}
	after := newRealEnvOn(t, auth, before.st)
	for _, want := range [][]byte{approved, cancelled} {
		id := decodeView(t, want).ID
		resp := after.do(t, "GET", "/v1/payments/"+id, testKey, nil)
		if got := bytes.TrimSpace(readBody(t, resp)); resp.StatusCode != 200 || !bytes.Equal(got, want) {
			t.Errorf("after the restart:\n%s\nbefore:\n%s", got, want)
		}
	}
	resp := after.do(t, "POST", "/v1/payments/"+av.ID+"/submit", testKey, nil)
	if got := bytes.TrimSpace(readBody(t, resp)); resp.StatusCode != 200 || !bytes.Equal(got, approved) || auth.calls != 0 {
		t.Errorf("submit again: %d %s (%d authorizations)", resp.StatusCode, got, auth.calls)
	}
	if resp := after.do(t, "POST", "/v1/payments/"+cv.ID+"/cancel", testKey, nil); resp.StatusCode != 200 {
		t.Errorf("cancel again: %d %s", resp.StatusCode, readBody(t, resp))
	}
	problem(t, after.do(t, "POST", "/v1/payments/"+cv.ID+"/submit", testKey, nil), 409)
	problem(t, after.do(t, "POST", "/v1/payments/"+av.ID+"/cancel", testKey, nil), 409)
	problem(t, after.do(t, "POST", "/v1/payments/"+av.ID+"/restart", testKey, nil), 409)
	problem(t, after.do(t, "POST", "/v1/payments/"+av.ID+"/reset", testKey, `{"field":"expiry"}`), 409)

	stream := after.do(t, "GET", "/v1/payments/"+av.ID+"/events", testKey, nil)
	var events []sseEvent
	for ev := range readEvents(stream.Body) {
		if !ev.comment {
			events = append(events, ev)
		}
	}
	stream.Body.Close()
	if len(events) != 1 || events[0].id != fmt.Sprint(av.Version) || !strings.Contains(events[0].data, `"state":"approved"`) {
		t.Errorf("stream of a stored payment: %+v", events)
	}

	tok := mintFull(t, after.testEnv, testKey, "call-2").Token
	problem(t, after.do(t, "GET", "/v1/payments/"+av.ID, tok, nil), 404)
	if resp := after.do(t, "GET", "/v1/payments/"+cv.ID, tok, nil); resp.StatusCode != 200 {
		t.Errorf("widget token, its call's stored payment: %d", resp.StatusCode)
	}
	problem(t, after.do(t, "GET", "/v1/payments/pay_none", testKey, nil), 404)
}

// countingApprover approves and counts the authorizations.
type countingApprover struct {
	approver
	calls int
}

func (a *countingApprover) Authorize(ctx context.Context, c *capture.Card, token string, req capture.PaymentRequest) (capture.Result, error) {
	a.calls++
	return capture.Result{Outcome: capture.OutcomeApproved, AuthCode: "A1", ResponseCode: "00"}, nil
}

// TestRevocationAfterRestart: a revoked widget token stays refused by a
// gateway started again with the same widget secret and store.
func TestRevocationAfterRestart(t *testing.T) {
	st, _ := newTestStore(t)
	secret := []byte(strings.Repeat("r", 32))
	first := newEnv(t, testConfig(), Deps{Store: st, WidgetSecret: secret})
	full := mintFull(t, first, testKey, "call-1")
	if resp := first.do(t, "DELETE", "/v1/widget-tokens/"+full.ID, testKey, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	first.ts.Close()
	first.srv.Close()

	second := newEnv(t, testConfig(), Deps{Store: st, WidgetSecret: secret})
	problem(t, second.do(t, "GET", "/v1/payments?call_id=call-1", full.Token, nil), 401)
	// The control: a token of the same secret not revoked is taken.
	other := mintFull(t, second, testKey, "call-1")
	if resp := second.do(t, "GET", "/v1/payments?call_id=call-1", other.Token, nil); resp.StatusCode != 200 {
		t.Errorf("a token not revoked: %d %s", resp.StatusCode, readBody(t, resp))
	}
}
