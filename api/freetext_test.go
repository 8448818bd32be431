package api

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/internal/pan"
)

// cardWritings are test card numbers written the ways the issue lists,
// and a few more.
var cardWritings = []string{
	"4111111111111111",
	"4111 1111 1111 1111",
	"4111.1111.1111.1111",
	"4111/1111/1111/1111",
	"4111_1111_1111_1111",
	"4111  1111  1111  1111",
	"4111 - 1111 - 1111 - 1111",
	"４１１１１１１１１１１１１１１１",
	"５５５５ ５５５５ ５５５５ ４４４４",
	"3782\u200b822463\u200b10005",
	"5555–5555–5555–4444",
}

// TestFreeTextRefusesCardNumbers: a card number in any free-text field,
// however written, is refused with a 422 that does not echo it, and no
// session starts, so nothing can store it, stream it or post it.
func TestFreeTextRefusesCardNumbers(t *testing.T) {
	cfg := testConfig()
	cfg.RateLimit = RateLimit{PerSecond: 1000, Burst: 1000}
	e := newEnv(t, cfg, Deps{})
	for i, card := range cardWritings {
		for _, field := range []string{"description", "merchant_reference"} {
			value := "paid by " + card
			if field == "merchant_reference" {
				value = card
			}
			body, _ := json.Marshal(map[string]any{"amount": 100, "currency": "GBP", field: value})
			resp := e.do(t, "POST", "/v1/calls/call-1/payments", testKey, string(body), "Idempotency-Key", "ft-"+field+"-"+string(rune('a'+i)))
			raw := string(readBody(t, resp))
			if resp.StatusCode != 422 {
				t.Errorf("%s %q: status %d, want 422: %s", field, value, resp.StatusCode, raw)
				continue
			}
			var p Problem
			if err := json.Unmarshal([]byte(raw), &p); err != nil || p.Type != problemBase+"validation" {
				t.Errorf("%s %q: not a validation problem: %s", field, value, raw)
			}
			if !strings.HasPrefix(p.Detail, field+" must not hold a card number") {
				t.Errorf("%s %q: detail %q does not name the field", field, value, p.Detail)
			}
			if pan.ContainsNormalized(raw) || strings.Contains(raw, card) {
				t.Errorf("%s %q: the problem echoes the card number: %s", field, value, raw)
			}
		}
	}
	if e.pay.starts != 0 {
		t.Errorf("%d sessions started with a card number in free text", e.pay.starts)
	}
	// Text with numbers that are not card numbers passes.
	for i, ok := range []string{"order 2024-000123-4567", "invoice 2024/12/06", "ref ４２", "4111 1111"} {
		body, _ := json.Marshal(map[string]any{"amount": 100, "currency": "GBP", "description": ok})
		resp := e.do(t, "POST", "/v1/calls/call-"+string(rune('1'+i%2))+"/payments", testKey, string(body), "Idempotency-Key", "ok-"+string(rune('a'+i)))
		if b := readBody(t, resp); resp.StatusCode != 201 && resp.StatusCode != 409 {
			t.Errorf("description %q: %d %s", ok, resp.StatusCode, b)
		}
	}
}

// TestGuardNormalisedFreeText: the last check before a View leaves
// catches the same writings in every free-text field.
func TestGuardNormalisedFreeText(t *testing.T) {
	g := guard{log: zap.NewNop()}
	for _, card := range cardWritings {
		v := g.view(capture.View{Description: "x " + card, MerchantRef: card, Reason: card,
			Result: &capture.Result{Token: card, AuthCode: "A1", Reason: card, ResponseCode: card}})
		for name, got := range map[string]string{"description": v.Description, "merchant_reference": v.MerchantRef, "reason": v.Reason,
			"token": v.Result.Token, "result reason": v.Result.Reason, "response code": v.Result.ResponseCode} {
			if got != redacted {
				t.Errorf("%q in %s left as %q", card, name, got)
			}
		}
		if v.Result.AuthCode != "A1" {
			t.Errorf("auth code changed: %q", v.Result.AuthCode)
		}
	}
}

// TestIdempotencyKeyNotKept: the store keys on a hash of the client's
// Idempotency-Key, so whatever it holds is not kept.
func TestIdempotencyKeyNotKept(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	key := "4111-1111-1111-1111"
	resp := e.do(t, "POST", "/v1/calls/call-1/payments", testKey, `{"amount":1,"currency":"GBP"}`, "Idempotency-Key", key)
	if b := readBody(t, resp); resp.StatusCode != 201 {
		t.Fatalf("start: %d %s", resp.StatusCode, b)
	}
	// The store's files: the key, in any writing, is not there (its hash
	// is); the answer kept for it is.
	var disk []byte
	for _, suffix := range []string{"", "-wal"} {
		b, _ := os.ReadFile(e.stPath + suffix)
		disk = append(disk, b...)
	}
	if !bytes.Contains(disk, []byte(`"amount":1,`)) {
		t.Fatal("the first answer is not in the store's files: the search looks at the wrong place")
	}
	if bytes.Contains(disk, []byte(key)) || bytes.Contains(disk, []byte(strings.ReplaceAll(key, "-", ""))) {
		t.Error("the store keeps the client's Idempotency-Key")
	}
}
