package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
)

func mintToken(t *testing.T, e *testEnv, call string) (string, time.Time) {
	t.Helper()
	resp := e.do(t, "POST", "/v1/widget-tokens", testKey, `{"call_id":"`+call+`"}`)
	b := readBody(t, resp)
	var tok widgetTokenResponse
	if err := json.Unmarshal(b, &tok); err != nil || resp.StatusCode != 201 {
		t.Fatalf("mint: %d %s", resp.StatusCode, b)
	}
	if !strings.HasPrefix(tok.Token, widgetPrefix) || tok.ExpiresAt.Before(time.Now().Add(14*time.Minute)) {
		t.Fatalf("token %+v", tok)
	}
	return tok.Token, tok.ExpiresAt
}

func TestWidgetTokenScope(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	tok, exp := mintToken(t, e, "call-1")
	recs := e.audit.records()
	if r := recs[len(recs)-1]; r.Event != audit.EventAPITokenIssued || r.Actor != "crm" || r.CallID != "call-1" || !r.ExpiresAt.Equal(exp) {
		t.Errorf("audit %+v, want expiry %v", r, exp)
	} else if line, _ := r.MarshalJSON(); strings.Contains(string(line), tok) || strings.Contains(string(line), tok[len(widgetPrefix):len(widgetPrefix)+12]) {
		t.Errorf("audit record holds the token: %s", line)
	}
	problem(t, e.do(t, "POST", "/v1/widget-tokens", testKey, `{"call_id":"nope"}`), 404)
	problem(t, e.do(t, "POST", "/v1/widget-tokens", testKey, `{}`), 422)

	// What the widget may do: start a payment on its call, and read and
	// act on that call's payments.
	mine := e.startPayment(t, tok, "call-1")
	if got := e.pay.sessions[mine.ID]; got == nil {
		t.Fatal("no session")
	}
	theirs := e.startPayment(t, testKey, "call-2")
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/v1/payments/" + mine.ID, "", 200},
		{"POST", "/v1/payments/" + mine.ID + "/reset", `{"field":"card_number"}`, 200},
		{"POST", "/v1/payments/" + mine.ID + "/restart", "", 200},
		// Another call's payment does not exist for this token.
		{"GET", "/v1/payments/" + theirs.ID, "", 404},
		{"POST", "/v1/payments/" + theirs.ID + "/cancel", "", 404},
		{"POST", "/v1/calls/call-2/payments", `{"amount":1,"currency":"GBP"}`, 403},
		// Key-only endpoints.
		{"GET", "/v1/calls", "", 403},
		{"GET", "/v1/calls/call-1", "", 403},
		{"POST", "/v1/widget-tokens", `{"call_id":"call-1"}`, 403},
	} {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		resp := e.do(t, tc.method, tc.path, tok, body, "Idempotency-Key", "w1")
		if tc.status == 200 {
			if b := readBody(t, resp); resp.StatusCode != 200 {
				t.Errorf("%s %s: %d %s", tc.method, tc.path, resp.StatusCode, b)
			}
			continue
		}
		problem(t, resp, tc.status)
	}
	if st := e.pay.sessions[theirs.ID].View().State; st != "collecting" {
		t.Errorf("the token changed another call's payment: %s", st)
	}
	var refusedRoutes []string
	for _, r := range e.audit.records() {
		if r.Event == audit.EventAPIAuthFailed && r.Reason == audit.ReasonTokenNotAllowed {
			refusedRoutes = append(refusedRoutes, r.Route)
		}
	}
	if got := strings.Join(refusedRoutes, ", "); got != "GET /v1/calls, GET /v1/calls/{id}, POST /v1/widget-tokens" {
		t.Errorf("token_not_allowed records for %s", got)
	}
	// Actions by the widget are recorded as the widget's.
	if p := (principal{key: "crm", callID: "call-1"}); p.actor() != "widget:crm" {
		t.Errorf("actor %q", p.actor())
	}
}

func TestWidgetTokenTampering(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := &tokenSigner{secret: []byte(strings.Repeat("k", 32)), ttl: 15 * time.Minute, now: func() time.Time { return now }, keys: testKeyring(t), st: testStoreOnly(t)}
	tok, _, exp, err := s.mint("crm", "call-1")
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(15 * time.Minute)) {
		t.Errorf("expires %v", exp)
	}
	p, err := s.verify(context.Background(), tok)
	if err != nil || p.key != "crm" || p.callID != "call-1" {
		t.Fatalf("verify: %+v %v", p, err)
	}
	// Flip each character of the token in turn: every change must fail.
	for i := len(widgetPrefix); i < len(tok); i++ {
		b := []byte(tok)
		b[i] ^= 1
		if p, err := s.verify(context.Background(), string(b)); err == nil && (p.callID != "call-1" || p.key != "crm") {
			t.Fatalf("tampered token at %d accepted as %+v", i, p)
		}
	}
	now = now.Add(15 * time.Minute)
	if _, err := s.verify(context.Background(), tok); err == nil {
		t.Error("expired token accepted")
	}
}

func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	resp := e.do(t, "GET", "/v1/openapi.yaml", "", nil)
	if b := readBody(t, resp); resp.StatusCode != 200 || !strings.HasPrefix(string(b), "openapi: 3.1") {
		t.Errorf("%d %.40s", resp.StatusCode, b)
	}
}

func TestWidgetStatic(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	for _, p := range []string{"/widget/", "/widget/widget.js", "/widget/widget.css"} {
		resp := e.do(t, "GET", p, "", nil)
		b := readBody(t, resp)
		if resp.StatusCode != 200 || len(b) == 0 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if strings.Contains(string(b), "http://") || strings.Contains(string(b), "https://") {
			t.Errorf("%s refers to an external resource", p)
		}
	}
	problem(t, e.do(t, "POST", "/widget/", "", nil), http.StatusMethodNotAllowed)
}

// TestWidgetFrameAncestors: the widget's CSP lets the configured origins,
// and only them, frame it; 'self' by default.
func TestWidgetFrameAncestors(t *testing.T) {
	for _, tc := range []struct {
		origins []string
		want    string
	}{
		{nil, "frame-ancestors 'self'"},
		{[]string{"https://crm.example.com", "https://*.crm.example.net:8443"}, "frame-ancestors https://crm.example.com https://*.crm.example.net:8443"},
		{[]string{"'none'"}, "frame-ancestors 'none'"},
	} {
		cfg := testConfig()
		cfg.FrameAncestors = tc.origins
		e := newEnv(t, cfg, Deps{})
		resp := e.do(t, "GET", "/widget/", "", nil)
		readBody(t, resp)
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.HasSuffix(csp, "; "+tc.want) || strings.Count(csp, "frame-ancestors") != 1 {
			t.Errorf("origins %v: CSP %q, want it to end with %q", tc.origins, csp, tc.want)
		}
	}
}
