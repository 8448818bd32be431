package api

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tonevault/tonevault/capture"
)

// fuzzDecode checks what every body decoder must do: return a clear
// decodeError or a value, never panic, and never echo the body in the
// error (the body could hold card data).
func fuzzDecode[T any](t *testing.T, body []byte, validate func(*T) error) {
	var dst T
	err := decodeJSON(bytes.NewReader(body), &dst)
	if err != nil {
		var de *decodeError
		if !errors.As(err, &de) || de.status == 0 || de.slug == "" {
			t.Fatalf("error %v is not a decodeError", err)
		}
		for _, run := range runRE.FindAllString(de.msg, -1) {
			if strings.Contains(string(body), run) {
				t.Fatalf("error message %q echoes digits of the body", de.msg)
			}
		}
		return
	}
	if validate != nil {
		if verr := validate(&dst); verr != nil {
			for _, run := range runRE.FindAllString(verr.Error(), -1) {
				t.Fatalf("validation message %q holds a digit run %s", verr, run)
			}
		}
	}
}

func FuzzDecodePaymentRequest(f *testing.F) {
	for _, s := range []string{
		`{"amount":1999,"currency":"GBP","merchant_reference":"ORD-1","description":"order"}`,
		`{"amount":1,"currency":"JPY"}`,
		`{"amount":10.5,"currency":"GBP"}`,
		`{"amount":"1","currency":"GBP"}`,
		`{"amount":1,"currency":"GBP","pan":"4111111111111111"}`,
		`{"amount":1,"currency":"GBP"}{}`,
		`{"description":"4111 1111 1111 1111"}`,
		`[]`, `null`, ``, `{`, `{"amount":99999999999999999999999}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzDecode(t, body, func(q *capture.PaymentRequest) error {
			err := validatePayment(q)
			if err == nil && (q.Amount <= 0 || q.Amount > maxAmount || !validCurrency(q.Currency) || containsCardNumber(q.Description) || containsCardNumber(q.MerchantRef)) {
				t.Fatalf("accepted %+v", q)
			}
			return err
		})
	})
}

func FuzzDecodeResetRequest(f *testing.F) {
	for _, s := range []string{`{"field":"card_number"}`, `{"field":""}`, `{"field":4}`, `{"field":"expiry","x":1}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzDecode(t, body, func(q *resetRequest) error { return q.validate() })
	})
}

func FuzzDecodeWidgetTokenRequest(f *testing.F) {
	for _, s := range []string{`{"call_id":"call-1"}`, `{"call_id":null}`, `{"call_id":"a"} `, `{"call_id":"a"}x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzDecode[widgetTokenRequest](t, body, nil)
	})
}

func FuzzWidgetToken(f *testing.F) {
	st, _ := newTestStore(f)
	s := &tokenSigner{secret: []byte(strings.Repeat("k", 32)), ttl: 1 << 62, now: nowFixed, keys: testKeyring(f), st: st}
	good, _, _, _ := s.mint("crm", "call-1")
	f.Add(good)
	f.Add(widgetPrefix)
	f.Add(widgetPrefix + "AAAA.AAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := s.verify(context.Background(), tok)
		if err == nil && tok != good {
			// Another spelling of the same bytes (base64 padding bits)
			// is fine only if it says the same.
			if p.key != "crm" || p.callID != "call-1" {
				t.Fatalf("forged token %q accepted as %+v", tok, p)
			}
		}
	})
}
