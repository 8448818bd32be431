package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/capture"
)

func BenchmarkKeyLookup(b *testing.B) {
	var keys []Key
	for i := 0; i < 10; i++ {
		keys = append(keys, Key{Name: "k" + strings.Repeat("x", i+1), Hash: HashKey(testKey + strings.Repeat("x", i+1))})
	}
	k, _ := newKeyring(keys)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := k.lookup(testKey); ok {
			b.Fatal("matched")
		}
	}
}

func BenchmarkWidgetTokenVerify(b *testing.B) {
	st, _ := newTestStore(b)
	s := &tokenSigner{secret: []byte(strings.Repeat("k", 32)), ttl: 1 << 62, now: nowFixed, keys: testKeyring(b), st: st}
	tok, _, _, _ := s.mint("crm", "call-1@127.0.0.1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGuardView(b *testing.B) {
	g := guard{log: zap.NewNop()}
	v := capture.View{Fields: []capture.FieldView{
		{Name: "card_number", Masked: "411111••••••1111"}, {Name: "expiry", Masked: "••••"}, {Name: "security_code", Masked: "•••"},
	}, MerchantRef: "ORD-1234", Description: "order 42", Result: &capture.Result{Token: "tok_1", AuthCode: "A1B2C3"}}
	b.ReportAllocs()
	for b.Loop() {
		g.view(v)
	}
}

// BenchmarkGetPayment is GET /v1/payments/{id} through the whole handler:
// auth, rate limit, routing, guard, JSON.
func BenchmarkGetPayment(b *testing.B) {
	cfg := testConfig()
	cfg.RateLimit = RateLimit{PerSecond: 1e9, Burst: 1 << 30}
	pay := newFakePayments()
	st, _ := newTestStore(b)
	srv, err := NewServer(cfg, Deps{Payments: pay, Calls: fakeCalls{"call-1": {ID: "call-1"}}, Store: st})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	s, _ := pay.Start("call-1", capture.PaymentRequest{Amount: 1, Currency: "GBP"}, "crm")
	req := httptest.NewRequest("GET", "/v1/payments/"+s.View().ID, nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}
