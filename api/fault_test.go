package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/capture"
)

// setFault installs f as the handlers' test hook until the test ends.
func setFault(t *testing.T, f func(where, route string)) {
	t.Helper()
	testFault.Store(&f)
	t.Cleanup(func() { testFault.Store(nil) })
}

// TestHandlerPanicOnPayment: a handler that panics while acting on a
// payment answers 500 (problem+json), logs the route and the stack
// through the API's logger, and ends that payment (failed, api_fault,
// card data wiped and audited); the server goes on, and the other
// call's payment is untouched. No output holds the card data.
func TestHandlerPanicOnPayment(t *testing.T) {
	re := newRealEnv(t, approver{})
	v1 := re.startPayment(t, testKey, "call-1")
	v2 := re.startPayment(t, testKey, "call-2")
	re.press("call-1", testPAN+"#"+testExpiry)
	re.press("call-2", testPAN)
	setFault(t, func(where, route string) {
		if where == "session" && route == "POST /v1/payments/{id}/reset" {
			panic("test fault in the reset handler")
		}
	})
	var out strings.Builder
	resp := re.do(t, "POST", "/v1/payments/"+v1.ID+"/reset", testKey, `{"field":"expiry"}`)
	p := problem(t, resp, http.StatusInternalServerError)
	if p.Type != problemBase+"internal" {
		t.Errorf("problem %+v", p)
	}
	js, _ := json.Marshal(p)
	out.Write(js)

	resp = re.do(t, "GET", "/v1/payments/"+v1.ID, testKey, nil)
	b := readBody(t, resp)
	out.Write(b)
	if got := decodeView(t, b); got.State != capture.StateFailed || got.Reason != capture.ReasonAPIFault {
		t.Errorf("payment after the panic: %s %q, want failed api_fault", got.State, got.Reason)
	}
	var ended, wiped bool
	for _, r := range re.capAudit.records() {
		if r.PaymentID != v1.ID {
			continue
		}
		ended = ended || r.Event == audit.EventSessionEnded && r.Reason == audit.ReasonAPIFault
		wiped = wiped || r.Event == audit.EventCardDataWiped && r.Field == string(capture.FieldCardNumber)
		rj, _ := json.Marshal(r)
		out.Write(rj)
	}
	if !ended || !wiped {
		t.Errorf("records of the payment: session.ended api_fault %v, card number wiped %v", ended, wiped)
	}
	logs := re.logs.String()
	if !strings.Contains(logs, "handler panic") || !strings.Contains(logs, `"route":"POST /v1/payments/{id}/reset"`) || !strings.Contains(logs, "runtime.gopanic") {
		t.Errorf("log does not hold the route and the stack:\n%s", logs)
	}
	if strings.Contains(logs, "test fault in the reset handler") {
		t.Error("log holds the panic's value")
	}
	out.WriteString(logs)

	// The rest goes on: the other payment takes its digits, and the
	// same route works on it.
	re.press("call-2", "#"+testExpiry)
	resp = re.do(t, "GET", "/v1/payments/"+v2.ID, testKey, nil)
	b = readBody(t, resp)
	out.Write(b)
	if got := decodeView(t, b); got.State != capture.StateCollecting || got.CurrentField != capture.FieldSecurityCode {
		t.Errorf("other payment: %s at %s, want collecting the security code", got.State, got.CurrentField)
	}
	testFault.Store(nil)
	resp = re.do(t, "POST", "/v1/payments/"+v2.ID+"/reset", testKey, `{"field":"expiry"}`)
	if b := readBody(t, resp); resp.StatusCode != http.StatusOK {
		t.Errorf("reset on the other payment: %d %s", resp.StatusCode, b)
	}
	assertNoCardData(t, "responses, records and log", out.String())
}

// TestHandlerPanicWithoutPayment: a route that panics before any
// payment is involved answers 500 and ends nothing.
func TestHandlerPanicWithoutPayment(t *testing.T) {
	re := newRealEnv(t, approver{})
	v := re.startPayment(t, testKey, "call-1")
	setFault(t, func(where, route string) {
		if where == "route" && route == "GET /v1/calls" {
			panic("test fault listing calls")
		}
	})
	problem(t, re.do(t, "GET", "/v1/calls", testKey, nil), http.StatusInternalServerError)
	resp := re.do(t, "GET", "/v1/payments/"+v.ID, testKey, nil)
	if got := decodeView(t, readBody(t, resp)); got.State != capture.StateCollecting {
		t.Errorf("payment %s after another route's panic", got.State)
	}
	if re.m.Faults() != 0 {
		t.Errorf("Faults = %d, want 0", re.m.Faults())
	}
}
