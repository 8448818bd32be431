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

var fixedWidgetSecret = []byte(strings.Repeat("s", 32))

// mintFull mints a token on e as cred and returns the whole answer.
func mintFull(t *testing.T, e *testEnv, cred, call string) widgetTokenResponse {
	t.Helper()
	resp := e.do(t, "POST", "/v1/widget-tokens", cred, `{"call_id":"`+call+`"}`)
	b := readBody(t, resp)
	var tok widgetTokenResponse
	if err := json.Unmarshal(b, &tok); err != nil || resp.StatusCode != 201 {
		t.Fatalf("mint: %d %s", resp.StatusCode, b)
	}
	if _, ok := parseTokenID(tok.ID); !ok {
		t.Fatalf("token id %q", tok.ID)
	}
	return tok
}

// lastAuthFailure is the reason of the newest api.auth_failed record.
func lastAuthFailure(e *testEnv) audit.Reason {
	recs := e.audit.records()
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Event == audit.EventAPIAuthFailed {
			return recs[i].Reason
		}
	}
	return ""
}

// TestWidgetTokenDiesWithItsKey: a token minted by a key is refused by a
// gateway (same widget secret) whose configuration no longer has that
// key, or has another key under its name.
func TestWidgetTokenDiesWithItsKey(t *testing.T) {
	minter := newEnv(t, testConfig(), Deps{WidgetSecret: fixedWidgetSecret})
	tok := mintFull(t, minter, testKey, "call-1").Token

	replaced := testConfig()
	replaced.Keys[0].Hash = HashKey("tvk_a_new_key_for_the_crm_0000000000000")
	for _, tc := range []struct {
		name   string
		keys   []Key
		status int
		reason audit.Reason
	}{
		{"same keys (control)", testConfig().Keys, 200, ""},
		{"key removed", testConfig().Keys[1:], 401, audit.ReasonTokenKeyRemoved},
		{"key replaced", replaced.Keys, 401, audit.ReasonTokenKeyRemoved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{Keys: tc.keys}, Deps{WidgetSecret: fixedWidgetSecret})
			resp := e.do(t, "POST", "/v1/calls/call-1/payments", tok, `{"amount":1,"currency":"GBP"}`, "Idempotency-Key", "k1")
			if tc.status == 200 {
				if b := readBody(t, resp); resp.StatusCode != 201 {
					t.Fatalf("%d %s", resp.StatusCode, b)
				}
				return
			}
			problem(t, resp, tc.status)
			if got := lastAuthFailure(e); got != tc.reason {
				t.Errorf("audit reason %q, want %q", got, tc.reason)
			}
		})
	}
}

// TestWidgetTokenTTLAtVerify: a token minted under a 10-year TTL is
// refused where the TTL is 15 minutes, before its own expiry.
func TestWidgetTokenTTLAtVerify(t *testing.T) {
	long := testConfig()
	long.WidgetTokenTTL = 10 * 365 * 24 * time.Hour
	minter := newEnv(t, long, Deps{WidgetSecret: fixedWidgetSecret})
	tenYears := mintFull(t, minter, testKey, "call-1")
	if tenYears.ExpiresAt.Before(time.Now().Add(9 * 365 * 24 * time.Hour)) {
		t.Fatalf("the minter did not use its TTL: %v", tenYears.ExpiresAt)
	}
	e := newEnv(t, testConfig(), Deps{WidgetSecret: fixedWidgetSecret})
	fresh := mintFull(t, e, testKey, "call-1")
	if b := readBody(t, e.do(t, "GET", "/v1/payments/none", fresh.Token, nil)); !strings.Contains(string(b), "not-found") {
		t.Fatalf("a fresh token was refused: %s", b)
	}
	problem(t, e.do(t, "GET", "/v1/payments/none", tenYears.Token, nil), 401)
	if got := lastAuthFailure(e); got != audit.ReasonExpiredToken {
		t.Errorf("audit reason %q", got)
	}

	// An issue time in the future (beyond clock skew) is refused too.
	now := time.Unix(1_800_000_000, 0)
	s := &tokenSigner{secret: fixedWidgetSecret, ttl: 15 * time.Minute, now: func() time.Time { return now }, keys: testKeyring(t), st: testStoreOnly(t)}
	tok, _, _, err := s.mint("crm", "call-1")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(-2 * tokenSkew)
	if _, err := s.verify(context.Background(), tok); err == nil {
		t.Error("a token issued in the future was accepted")
	}
	now = now.Add(2 * tokenSkew)
	if _, err := s.verify(context.Background(), tok); err != nil {
		t.Errorf("control: %v", err)
	}
}

// TestWidgetTokenRevoke: the minting key revokes a token by id; no other
// key can, and no widget token can.
func TestWidgetTokenRevoke(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	tok := mintFull(t, e, testKey, "call-1")
	keep := mintFull(t, e, testKey, "call-1")
	use := func(tok string) *http.Response { return e.do(t, "GET", "/v1/payments/none", tok, nil) }
	problem(t, use(tok.Token), 404) // accepted: the payment does not exist

	problem(t, e.do(t, "DELETE", "/v1/widget-tokens/"+tok.ID, otherKey, nil), 404)
	problem(t, e.do(t, "DELETE", "/v1/widget-tokens/"+tok.ID, keep.Token, nil), 403)
	problem(t, e.do(t, "DELETE", "/v1/widget-tokens/wt_nope", testKey, nil), 404)
	forgedID := tok.ID[:len(tok.ID)-1] + "a"
	if strings.HasSuffix(tok.ID, "a") {
		forgedID = tok.ID[:len(tok.ID)-1] + "b"
	}
	problem(t, e.do(t, "DELETE", "/v1/widget-tokens/"+forgedID, testKey, nil), 404)
	problem(t, use(tok.Token), 404) // still accepted

	for range 2 { // twice: the second is no error
		resp := e.do(t, "DELETE", "/v1/widget-tokens/"+tok.ID, testKey, nil)
		if b := readBody(t, resp); resp.StatusCode != 204 {
			t.Fatalf("revoke: %d %s", resp.StatusCode, b)
		}
	}
	problem(t, use(tok.Token), 401)
	if got := lastAuthFailure(e); got != audit.ReasonRevokedToken {
		t.Errorf("audit reason %q", got)
	}
	problem(t, use(keep.Token), 404) // the other token lives on
	var revoked int
	for _, r := range e.audit.records() {
		if r.Event == audit.EventAPITokenRevoked && r.Actor == "crm" {
			revoked++
		}
	}
	if revoked != 2 {
		t.Errorf("%d api.token_revoked records by crm, want 2", revoked)
	}
}

// TestRateLimitPerWidgetToken: each token has its own bucket: one token
// over its limit leaves another token of the same key and call, and the
// key, their own requests.
func TestRateLimitPerWidgetToken(t *testing.T) {
	cfg := testConfig()
	cfg.RateLimit = RateLimit{PerSecond: 0.001, Burst: 3}
	e := newEnv(t, cfg, Deps{})
	a := mintFull(t, e, testKey, "call-1").Token
	b := mintFull(t, e, otherKey, "call-1").Token
	c := mintFull(t, e, otherKey, "call-1").Token
	for i := range 3 {
		if resp := e.do(t, "GET", "/v1/payments/none", a, nil); resp.StatusCode == 429 {
			t.Fatalf("request %d of the burst limited", i)
		}
	}
	resp := e.do(t, "GET", "/v1/payments/none", a, nil)
	problem(t, resp, 429)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	// b and c: same key, same call, a burst each.
	for _, other := range []string{b, c} {
		for range 3 {
			if resp := e.do(t, "GET", "/v1/payments/none", other, nil); resp.StatusCode == 429 {
				t.Fatal("a token was limited by another token's requests")
			}
		}
	}
	// The key's bucket is not its tokens'.
	if resp := e.do(t, "GET", "/v1/calls", testKey, nil); resp.StatusCode != 200 {
		t.Errorf("the key: %d", resp.StatusCode)
	}
}

// TestWidgetTokenOnKeyOnlyRouteFlood: 2,000 requests with a widget token
// on a key-only route write about a burst of audit records, not 2,000.
func TestWidgetTokenOnKeyOnlyRouteFlood(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	tok := mintFull(t, e, testKey, "call-1").Token
	before := len(e.audit.records())
	codes := map[int]int{}
	for range 2000 {
		resp := e.do(t, "GET", "/v1/calls", tok, nil)
		readBody(t, resp)
		codes[resp.StatusCode]++
	}
	written := len(e.audit.records()) - before
	t.Logf("2000 requests: statuses %v, %d audit records", codes, written)
	if written > 40 {
		t.Errorf("%d audit records for the flood, want about the burst (30)", written)
	}
	if codes[403] == 0 || codes[429] == 0 || codes[403]+codes[429] != 2000 {
		t.Errorf("statuses %v, want 403 then 429", codes)
	}
}
