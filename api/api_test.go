package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/store"
)

func TestAuthFailures(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	pay := e.startPayment(t, testKey, "call-1")
	expired := (&tokenSigner{secret: mustSecret(t, e.srv), ttl: time.Minute, now: func() time.Time { return time.Now().Add(-time.Hour) }, keys: e.srv.keys})
	oldTok, _, _, err := expired.mint("crm", "call-1")
	if err != nil {
		t.Fatal(err)
	}
	forged := (&tokenSigner{secret: []byte(strings.Repeat("x", 32)), ttl: time.Hour, now: time.Now, keys: e.srv.keys})
	forgedTok, _, _, _ := forged.mint("crm", "call-1")

	tests := []struct {
		name, method, path, auth string
		status                   int
		reason                   audit.Reason
		route                    string
	}{
		{"no credential", "GET", "/v1/calls", "", 401, audit.ReasonMissingCredentials, "GET /v1/calls"},
		{"unknown key", "GET", "/v1/calls", "Bearer tvk_wrong", 401, audit.ReasonUnknownKey, "GET /v1/calls"},
		{"basic scheme", "GET", "/v1/calls", "Basic " + testKey, 401, audit.ReasonMissingCredentials, "GET /v1/calls"},
		{"empty bearer", "GET", "/v1/calls", "Bearer ", 401, audit.ReasonMissingCredentials, "GET /v1/calls"},
		{"expired widget token", "GET", "/v1/payments/" + pay.ID, "Bearer " + oldTok, 401, audit.ReasonExpiredToken, "GET /v1/payments/{id}"},
		{"forged widget token", "GET", "/v1/payments/" + pay.ID, "Bearer " + forgedTok, 401, audit.ReasonInvalidToken, "GET /v1/payments/{id}"},
		{"truncated widget token", "GET", "/v1/payments/" + pay.ID, "Bearer " + forgedTok[:20], 401, audit.ReasonInvalidToken, "GET /v1/payments/{id}"},
		{"api key in query", "GET", "/v1/payments/" + pay.ID + "/events?access_token=" + testKey, "", 401, audit.ReasonKeyInQuery, "GET /v1/payments/{id}/events"},
		{"widget token in query off events", "GET", "/v1/payments/" + pay.ID + "?access_token=" + forgedTok, "", 401, audit.ReasonMissingCredentials, "GET /v1/payments/{id}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.audit.records())
			req, _ := http.NewRequest(tc.method, e.ts.URL+tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			problem(t, resp, tc.status)
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate")
			}
			recs := e.audit.records()
			if len(recs) != before+1 {
				t.Fatalf("%d audit records, want 1", len(recs)-before)
			}
			r := recs[len(recs)-1]
			if r.Event != audit.EventAPIAuthFailed || r.Outcome != audit.Failure || r.Origin != "127.0.0.1" || r.Reason != tc.reason || r.Route != tc.route {
				t.Errorf("audit record %+v, want reason %s route %q", r, tc.reason, tc.route)
			}
			line, _ := r.MarshalJSON()
			for _, secret := range []string{testKey, "tvk_wrong", oldTok, forgedTok[:20], pay.ID} {
				if strings.Contains(string(line), secret) {
					t.Errorf("audit record holds the presented credential: %+v", r)
				}
			}
		})
	}
}

func mustSecret(t *testing.T, s *Server) []byte { t.Helper(); return s.tokens.secret }

func TestKeyringConstantTimeLookup(t *testing.T) {
	k, err := newKeyring(testConfig().Keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key, name string
		ok        bool
	}{{testKey, "crm", true}, {otherKey, "other", true}, {testKey + "x", "", false}, {"", "", false}} {
		name, ok := k.lookup(tc.key)
		if name != tc.name || ok != tc.ok {
			t.Errorf("lookup(%q) = %q, %v", tc.key, name, ok)
		}
	}
}

func TestRoutingProblems(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	p := problem(t, e.do(t, "GET", "/v1/nope", testKey, nil), 404)
	if p.Instance != "/v1/nope" {
		t.Errorf("instance %q", p.Instance)
	}
	resp := e.do(t, "DELETE", "/v1/calls", testKey, nil)
	problem(t, resp, 405)
	if allow := resp.Header.Get("Allow"); !strings.Contains(allow, "GET") {
		t.Errorf("Allow %q", allow)
	}
	resp = e.do(t, "GET", "/v1/calls/call-1/payments", testKey, nil)
	problem(t, resp, 405)
	if allow := resp.Header.Get("Allow"); !strings.Contains(allow, "POST") {
		t.Errorf("Allow %q", allow)
	}
	problem(t, e.do(t, "GET", "/v1//calls", testKey, nil), 404)
}

func TestStrictJSON(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBodyBytes = 256
	cfg.RateLimit = RateLimit{PerSecond: 1000, Burst: 1000}
	e := newEnv(t, cfg, Deps{})
	good := `{"amount":100,"currency":"GBP","merchant_reference":"r","description":"d"}`
	tests := []struct {
		name, body, ctype, idem string
		status                  int
		slug                    string
	}{
		{"text/plain", good, "text/plain", "a1", 415, "unsupported-media-type"},
		{"no content type", good, "-", "a2", 415, "unsupported-media-type"},
		{"latin1", good, "application/json; charset=latin1", "a3", 415, "unsupported-media-type"},
		{"unknown field", `{"amount":100,"currency":"GBP","pan":"4111111111111111"}`, "", "a4", 400, "bad-request"},
		// merchant picks brands and the token format: the gateway's, not the client's.
		{"merchant", `{"amount":100,"currency":"GBP","merchant":"M1"}`, "", "a4c", 400, "bad-request"},
		{"card number as a key", `{"4111111111111111":1}`, "", "a4b", 400, "bad-request"},
		{"two values", good + good, "", "a5", 400, "bad-request"},
		{"trailing garbage", good + "x", "", "a6", 400, "bad-request"},
		{"too large", `{"description":"` + strings.Repeat("a", 300) + `"}`, "", "a7", 413, "payload-too-large"},
		{"empty", ``, "", "a8", 400, "bad-request"},
		{"array", `[]`, "", "a9", 400, "bad-request"},
		{"float amount", `{"amount":10.5,"currency":"GBP"}`, "", "b1", 400, "bad-request"},
		{"string amount", `{"amount":"10","currency":"GBP"}`, "", "b2", 400, "bad-request"},
		{"zero amount", `{"amount":0,"currency":"GBP"}`, "", "b3", 422, "validation"},
		{"negative amount", `{"amount":-5,"currency":"GBP"}`, "", "b4", 422, "validation"},
		{"huge amount", `{"amount":1000000000000,"currency":"GBP"}`, "", "b5", 422, "validation"},
		{"lower-case currency", `{"amount":1,"currency":"gbp"}`, "", "b6", 422, "validation"},
		{"withdrawn currency", `{"amount":1,"currency":"HRK"}`, "", "b7", 422, "validation"},
		{"no-currency code", `{"amount":1,"currency":"XXX"}`, "", "b8", 422, "validation"},
		{"card number in description", `{"amount":1,"currency":"GBP","description":"card 4111 1111 1111 1111"}`, "", "b9", 422, "validation"},
		{"control character", `{"amount":1,"currency":"GBP","merchant_reference":"a\u0000b"}`, "", "c1", 422, "validation"},
		{"no idempotency key", good, "", "-", 400, "idempotency-required"},
		{"idempotency key with space", good, "", "a b", 400, "idempotency-required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := "application/json"
			switch tc.ctype {
			case "-":
				ct = ""
			case "":
			default:
				ct = tc.ctype
			}
			idem := tc.idem
			if idem == "-" {
				idem = ""
			}
			resp := e.do(t, "POST", "/v1/calls/call-1/payments", testKey, tc.body, "Content-Type", ct, "Idempotency-Key", idem)
			p := problem(t, resp, tc.status)
			if p.Type != problemBase+tc.slug {
				t.Errorf("type %q, want %s", p.Type, tc.slug)
			}
			if strings.Contains(p.Detail, "4111") {
				t.Errorf("problem echoes card digits: %q", p.Detail)
			}
		})
	}
	if e.pay.starts != 0 {
		t.Errorf("%d sessions started by bad requests", e.pay.starts)
	}
}

func TestStartPaymentIdempotent(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	body := `{"amount":1999,"currency":"GBP","merchant_reference":"ORD-1","description":"order"}`
	r1 := e.do(t, "POST", "/v1/calls/call-1/payments", testKey, body, "Idempotency-Key", "abc")
	b1 := readBody(t, r1)
	if r1.StatusCode != 201 {
		t.Fatalf("%d %s", r1.StatusCode, b1)
	}
	v := decodeView(t, b1)
	if r1.Header.Get("Location") != "/v1/payments/"+v.ID || v.Amount != 1999 || v.Currency != "GBP" || v.MerchantRef != "ORD-1" || v.CallID != "call-1" {
		t.Fatalf("Location %q, view %+v", r1.Header.Get("Location"), v)
	}
	// Same key, same request (spelt differently): the same answer, no
	// second session.
	r2 := e.do(t, "POST", "/v1/calls/call-1/payments", testKey, `{ "currency":"GBP", "amount":1999, "description":"order", "merchant_reference":"ORD-1" }`, "Idempotency-Key", "abc")
	b2 := readBody(t, r2)
	if r2.StatusCode != 201 || string(b2) != string(b1) || r2.Header.Get("Location") != r1.Header.Get("Location") {
		t.Fatalf("replay: %d %s", r2.StatusCode, b2)
	}
	if e.pay.starts != 1 {
		t.Fatalf("%d starts, want 1", e.pay.starts)
	}
	// Same key, different request.
	problem(t, e.do(t, "POST", "/v1/calls/call-1/payments", testKey, strings.Replace(body, "1999", "2000", 1), "Idempotency-Key", "abc"), 422)
	// Another key of the API is another scope.
	problem(t, e.do(t, "POST", "/v1/calls/call-1/payments", otherKey, body, "Idempotency-Key", "abc"), 409)
	// New key while the session is live: call busy.
	problem(t, e.do(t, "POST", "/v1/calls/call-1/payments", testKey, body, "Idempotency-Key", "def"), 409)
	// Unknown call.
	problem(t, e.do(t, "POST", "/v1/calls/nope/payments", testKey, body, "Idempotency-Key", "ghi"), 404)
}

func TestCalls(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	var list callList
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"call-1", "call-2"}},
		{"?caller=%2B447700900002", []string{"call-2"}},
		{"?state=answered", []string{"call-1"}},
		{"?correlation=crm:case-9", []string{"call-1"}},
		{"?correlation=crm:nope", nil},
	} {
		resp := e.do(t, "GET", "/v1/calls"+tc.query, testKey, nil)
		b := readBody(t, resp)
		list = callList{}
		if err := json.Unmarshal(b, &list); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", tc.query, resp.StatusCode, b)
		}
		got := map[string]bool{}
		for _, c := range list.Calls {
			got[c.ID] = true
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.query, got, tc.want)
		}
		for _, w := range tc.want {
			if !got[w] {
				t.Errorf("%s: %s missing", tc.query, w)
			}
		}
		if tc.want == nil && !strings.Contains(string(b), `"calls":[]`) {
			t.Errorf("empty list should be [], got %s", b)
		}
	}
	problem(t, e.do(t, "GET", "/v1/calls?correlation=novalue", testKey, nil), 400)
	resp := e.do(t, "GET", "/v1/calls/call-1", testKey, nil)
	if b := readBody(t, resp); resp.StatusCode != 200 || !strings.Contains(string(b), `"caller":"+447700900001"`) {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
	problem(t, e.do(t, "GET", "/v1/calls/nope", testKey, nil), 404)
}

func TestActions(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	v := e.startPayment(t, testKey, "call-1")
	base := "/v1/payments/" + v.ID
	problem(t, e.do(t, "POST", base+"/submit", testKey, nil), 409) // not complete
	problem(t, e.do(t, "POST", base+"/reset", testKey, `{"field":"nope"}`), 404)
	problem(t, e.do(t, "POST", base+"/reset", testKey, `{"field":"4111111111111111"}`), 422)
	problem(t, e.do(t, "POST", base+"/reset", testKey, `{}`), 422)
	problem(t, e.do(t, "POST", base+"/restart", testKey, `{"x":1}`), 400)
	for _, a := range []struct{ path, body string }{
		{"/reset", `{"field":"expiry"}`}, {"/restart", ""}, {"/restart", "{}"},
	} {
		resp := e.do(t, "POST", base+a.path, testKey, a.body)
		if b := readBody(t, resp); resp.StatusCode != 200 || decodeView(t, b).ID != v.ID {
			t.Errorf("%s: %d %s", a.path, resp.StatusCode, b)
		}
	}
	e.pay.sessions[v.ID].complete()
	for i := 0; i < 2; i++ { // submit is idempotent
		resp := e.do(t, "POST", base+"/submit", testKey, nil)
		b := readBody(t, resp)
		if got := decodeView(t, b); resp.StatusCode != 200 || got.State != "approved" || got.Result == nil || got.Result.AuthCode != "A1B2C3" {
			t.Fatalf("submit %d: %d %s", i, resp.StatusCode, b)
		}
	}
	problem(t, e.do(t, "POST", base+"/cancel", testKey, nil), 409) // approved: too late
	problem(t, e.do(t, "GET", "/v1/payments/nope", testKey, nil), 404)
}

func TestSubmitErrors(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	v := e.startPayment(t, testKey, "call-1")
	e.pay.sessions[v.ID].complete()
	e.pay.submitErr = errors.Join(capture.ErrUnavailable, errors.New("vault down"))
	resp := e.do(t, "POST", "/v1/payments/"+v.ID+"/submit", testKey, nil)
	p := problem(t, resp, 503)
	if resp.Header.Get("Retry-After") == "" || p.Type != problemBase+"unavailable" || strings.Contains(p.Detail, "vault down") {
		t.Errorf("503: %+v Retry-After %q", p, resp.Header.Get("Retry-After"))
	}
	e.pay.submitErr = capture.ErrNotConfigured
	resp = e.do(t, "POST", "/v1/payments/"+v.ID+"/submit", testKey, nil)
	b := readBody(t, resp)
	if got := decodeView(t, b); resp.StatusCode != 200 || got.State != "failed" || got.Reason != "not_configured" || got.Result != nil && got.Result.Outcome == "approved" {
		t.Errorf("not configured: %d %s", resp.StatusCode, b)
	}
}

func TestCancelIdempotent(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	v := e.startPayment(t, testKey, "call-1")
	for i := 0; i < 2; i++ {
		resp := e.do(t, "POST", "/v1/payments/"+v.ID+"/cancel", testKey, nil)
		if b := readBody(t, resp); resp.StatusCode != 200 || decodeView(t, b).State != "cancelled" {
			t.Fatalf("cancel %d: %d %s", i, resp.StatusCode, b)
		}
	}
}

func TestRateLimit(t *testing.T) {
	cfg := testConfig()
	cfg.RateLimit = RateLimit{PerSecond: 0.001, Burst: 2}
	e := newEnv(t, cfg, Deps{})
	for i := 0; i < 2; i++ {
		if resp := e.do(t, "GET", "/v1/calls", testKey, nil); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	resp := e.do(t, "GET", "/v1/calls", testKey, nil)
	problem(t, resp, 429)
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q", ra)
	}
	// Per key: the other key still has its burst.
	if resp := e.do(t, "GET", "/v1/calls", otherKey, nil); resp.StatusCode != 200 {
		t.Errorf("other key: %d", resp.StatusCode)
	}
}

func TestLimiterRefills(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(RateLimit{PerSecond: 2, Burst: 1}, func() time.Time { return now })
	if ok, _ := l.allow("a"); !ok {
		t.Fatal("first request refused")
	}
	if ok, retry := l.allow("a"); ok || retry != 1 {
		t.Fatalf("second: %v %d", ok, retry)
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.allow("a"); !ok {
		t.Fatal("not refilled after 1/rate")
	}
}

// TestLimiterRetryAfter: Retry-After is the whole seconds until the next
// token, and refused requests do not spend tokens of their own.
func TestLimiterRetryAfter(t *testing.T) {
	tests := []struct {
		rate  float64
		after time.Duration // since the burst was spent
		want  int
	}{
		{0.25, 0, 4},
		{0.25, 1500 * time.Millisecond, 3},
		{0.25, 3999 * time.Millisecond, 1},
		{0.001, 0, 1000},
		{10, 0, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.rate, "/", tt.after), func(t *testing.T) {
			now := time.Unix(1000, 0)
			l := newLimiter(RateLimit{PerSecond: tt.rate, Burst: 1}, func() time.Time { return now })
			if ok, _ := l.allow("a"); !ok {
				t.Fatal("first request refused")
			}
			now = now.Add(tt.after)
			for range 3 {
				if ok, retry := l.allow("a"); ok || retry != tt.want {
					t.Fatalf("allow = %v, Retry-After %d; want refused, %d", ok, retry, tt.want)
				}
			}
			now = now.Add(time.Duration(tt.want) * time.Second)
			if ok, _ := l.allow("a"); !ok {
				t.Errorf("refused after waiting the Retry-After")
			}
		})
	}
}

func TestLimiterPrunesFullBuckets(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(RateLimit{PerSecond: 1, Burst: 2}, func() time.Time { return now })
	for i := 0; i < pruneBuckets; i++ {
		l.allow(fmt.Sprint("call-", i))
	}
	now = now.Add(time.Second) // the call-* buckets are full again
	l.allow("busy")
	l.allow("busy")
	now = now.Add(time.Second / 2) // "busy" is still short of a full bucket
	l.allow("new")
	if len(l.buckets) != 2 {
		t.Fatalf("%d buckets after pruning, want 2 (busy, new)", len(l.buckets))
	}
	if ok, _ := l.allow("busy"); ok {
		t.Error("pruning forgot a bucket that was not full")
	}
}

func TestAuthFailureFloodLimited(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	var got429 bool
	for i := 0; i < 40 && !got429; i++ {
		resp := e.do(t, "GET", "/v1/calls", "wrong", nil)
		readBody(t, resp)
		got429 = resp.StatusCode == http.StatusTooManyRequests
	}
	if !got429 {
		t.Fatal("40 failed authentications in a row were never slowed down")
	}
	if n := len(e.audit.records()); n < 25 || n > 35 {
		t.Errorf("%d audit records, want about the burst (30)", n)
	}
	// A good key from the same address is not locked out.
	if resp := e.do(t, "GET", "/v1/calls", testKey, nil); resp.StatusCode != 200 {
		t.Errorf("good key: %d", resp.StatusCode)
	}
}

func TestProblemNeverEchoesCardNumber(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	p := problem(t, e.do(t, "GET", "/v1/payments/4111111111111111", testKey, nil), 404)
	if strings.Contains(p.Instance, "4111") {
		t.Errorf("instance %q", p.Instance)
	}
}

// TestIdempotencyAcrossRestart: the first answer to a key is in the
// store. A gateway started again on it replays the answer (the call gone
// meanwhile) and starts nothing; the key with another request is
// refused; a key held by a request in flight gets 409 until its hold
// runs out (its gateway died), then it is taken afresh.
func TestIdempotencyAcrossRestart(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	st, _ := newTestStoreAt(t, now)
	first := newEnv(t, testConfig(), Deps{Store: st})
	const body = `{"amount":1999,"currency":"GBP"}`
	resp := first.do(t, "POST", "/v1/calls/call-1/payments", testKey, body, "Idempotency-Key", "k-1")
	answer := readBody(t, resp)
	if resp.StatusCode != 201 {
		t.Fatalf("first: %d %s", resp.StatusCode, answer)
	}
	loc := resp.Header.Get("Location")
	first.ts.Close()
	first.srv.Close()

	second := newEnv(t, testConfig(), Deps{Store: st, Calls: fakeCalls{}})
	resp = second.do(t, "POST", "/v1/calls/call-1/payments", testKey, body, "Idempotency-Key", "k-1")
	if b := readBody(t, resp); resp.StatusCode != 201 || !bytes.Equal(b, answer) ||
		resp.Header.Get("Idempotent-Replayed") != "true" || resp.Header.Get("Location") != loc {
		t.Errorf("retry after the restart: %d %v %s; want the first answer %s", resp.StatusCode, resp.Header, b, answer)
	}
	if second.pay.starts != 0 {
		t.Errorf("the retry started %d sessions", second.pay.starts)
	}
	p := problem(t, second.do(t, "POST", "/v1/calls/call-1/payments", testKey, `{"amount":2000,"currency":"GBP"}`, "Idempotency-Key", "k-1"), 422)
	if p.Type != problemBase+"idempotency-mismatch" {
		t.Errorf("other request with the key: %+v", p)
	}
	// Without the first answer the call's absence is what the retry hears.
	problem(t, second.do(t, "POST", "/v1/calls/call-1/payments", testKey, body, "Idempotency-Key", "k-3"), 404)

	// A request that claimed k-2 and whose gateway died before it answered.
	req := capture.PaymentRequest{Amount: 1999, Currency: "GBP"}
	fp := idemFingerprint("call-1", req)
	if _, err := st.BeginIdempotent(context.Background(), store.IdempotencyClaim{Key: idemScope(principal{key: "crm"}, "k-2"),
		Fingerprint: fp[:], TTL: idemTTL, Hold: time.Minute}); err != nil {
		t.Fatal(err)
	}
	third := newEnv(t, testConfig(), Deps{Store: st})
	resp = third.do(t, "POST", "/v1/calls/call-1/payments", testKey, body, "Idempotency-Key", "k-2")
	if p := problem(t, resp, 409); resp.Header.Get("Retry-After") == "" || !strings.Contains(p.Detail, "still being processed") {
		t.Errorf("key held: %+v", p)
	}
	mu.Lock()
	clock = clock.Add(time.Minute) // the hold of the dead request runs out
	mu.Unlock()
	resp = third.do(t, "POST", "/v1/calls/call-1/payments", testKey, body, "Idempotency-Key", "k-2")
	if b := readBody(t, resp); resp.StatusCode != 201 {
		t.Errorf("after the hold: %d %s", resp.StatusCode, b)
	}
}

func TestActionBodies(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	v := e.startPayment(t, testKey, "call-1")
	problem(t, e.do(t, "POST", "/v1/payments/"+v.ID+"/cancel", testKey, "cancel", "Content-Type", "text/plain"), 415)
	problem(t, e.do(t, "POST", "/v1/payments/"+v.ID+"/cancel", testKey, `{"reason":"x"}`), 400)
	problem(t, e.do(t, "POST", "/v1/payments/"+v.ID+"/reset", testKey, nil), 400)
	if st := e.pay.sessions[v.ID].View().State; st != "collecting" {
		t.Errorf("a refused request changed the session: %s", st)
	}
}

// TestRoutesAreAuditRoutes: a refused request is audited with its route's
// pattern, which the trail takes only in its route syntax.
func TestRoutesAreAuditRoutes(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	for _, rt := range e.srv.routes {
		if !audit.ValidRoute(rt.method + " " + rt.path) {
			t.Errorf("route %s %s is not an audit route", rt.method, rt.path)
		}
	}
}
