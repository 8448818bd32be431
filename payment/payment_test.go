package payment

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/internal/secret"
	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/psp/sim"
	"github.com/tonevault/tonevault/store"
	"github.com/tonevault/tonevault/tokenize"
)

// testStore is the store the connector keeps its reversals and STANs in:
// SQLite in a temporary directory.
func testStore(t testing.TB) *store.Store {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.SQLite.Path = filepath.Join(t.TempDir(), "tonevault.db")
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// fakeVault stands in for Vault at the package boundary (the real one is
// exercised in tokenize's tests and the end-to-end tests).
type fakeVault struct {
	err  error
	seen [][]byte
}

func (f *fakeVault) Tokenize(_ context.Context, pan, _ secret.Secret, brand, _ string) (tokenize.Token, error) {
	if f.err != nil {
		return tokenize.Token{}, f.err
	}
	f.seen = append(f.seen, bytes.Clone(pan.Bytes()))
	return tokenize.Token{Value: "tok_fake", Brand: brand}, nil
}

func card(pan, exp, cvv string, brand capture.Brand) *capture.Card {
	return &capture.Card{PAN: secret.New([]byte(pan)), Expiry: secret.New([]byte(exp)), CVV: secret.New([]byte(cvv)), Brand: brand}
}

// TestAuthorizeAgainstSim runs Service against the real ISO 8583
// connector and the acquirer simulator: every outcome the capture session
// can show.
func TestAuthorizeAgainstSim(t *testing.T) {
	var simLog bytes.Buffer
	srv, err := sim.Listen("127.0.0.1:0", sim.Config{Log: &simLog})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	core, logs := observer.New(zap.DebugLevel)
	conn, err := psp.NewISO(psp.Config{
		Addrs: []string{srv.Addr()}, Timeout: 500 * time.Millisecond,
		Terminal: "TV000001", Merchant: "TONEVAULT0001", Logger: zap.New(core),
	}, testStore(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	p := &Service{Vault: &fakeVault{}, PSP: conn}
	req := capture.PaymentRequest{Amount: 1999, Currency: "GBP", MerchantRef: "order-1"}

	for _, tc := range []struct {
		name         string
		pan          string
		brand        capture.Brand
		amount       int64
		outcome      string
		code, reason string
	}{
		{"approved visa", "4111111111111111", capture.BrandVisa, 1999, capture.OutcomeApproved, "00", ""},
		{"approved amex", "378282246310005", capture.BrandAmex, 1999, capture.OutcomeApproved, "00", ""},
		{"declined 05", "4000000000000002", capture.BrandVisa, 1999, capture.OutcomeDeclined, "05", ""},
		{"insufficient funds 51", "5555555555554444", capture.BrandMastercard, 1051, capture.OutcomeDeclined, "51", ""},
		{"no answer", "4000000000000119", capture.BrandVisa, 1999, capture.OutcomeFailed, "", "psp_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := card(tc.pan, "1230", "737", tc.brand)
			defer c.PAN.Wipe()
			r := req
			r.Amount = tc.amount
			tok, err := p.Tokenize(ctx, c, r)
			if err != nil || tok != "tok_fake" {
				t.Fatalf("Tokenize = %q, %v", tok, err)
			}
			res, err := p.Authorize(ctx, c, tok, r)
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			if res.Outcome != tc.outcome || res.ResponseCode != tc.code || res.Token != "tok_fake" {
				t.Errorf("result %+v; want outcome %s code %q", res, tc.outcome, tc.code)
			}
			if tc.reason != "" && res.Reason != tc.reason {
				t.Errorf("reason %q, want %q", res.Reason, tc.reason)
			}
			if tc.outcome == capture.OutcomeApproved && res.AuthCode == "" {
				t.Error("approved without an auth code")
			}
			// The telephone-order indicators sent reach the Result, for
			// the payment's record: the brand's own, whatever the outcome.
			want := capture.MOTO{EntryMode: psp.DefaultEntryMode, ConditionCode: psp.DefaultCondition,
				Field60: psp.DefaultMOTO[string(tc.brand)].Field60, Field61: psp.DefaultMOTO[string(tc.brand)].Field61}
			if res.MOTO != want {
				t.Errorf("MOTO %+v, want %+v", res.MOTO, want)
			}
		})
	}
	var all bytes.Buffer
	all.Write(simLog.Bytes())
	for _, e := range logs.All() {
		all.WriteString(e.Message)
		for k, v := range e.ContextMap() {
			all.WriteString(k)
			all.WriteString(stringOf(v))
		}
	}
	if leaks := cardData(all.Bytes()); len(leaks) > 0 {
		t.Errorf("logs hold card data: %q", leaks)
	}
	if leaks := cardData([]byte("at 2026-11-24T00:12:01.737Z sent cvv=737")); len(leaks) != 1 {
		t.Errorf("the leak check misses a planted CVV or flags a timestamp: %q", leaks)
	}
}

// timestamps hold any three digits now and then (".737Z"): they are cut
// before the CVV is looked for as a number of its own.
var (
	timestamp = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?`)
	digitRun  = regexp.MustCompile(`\d+`)
)

// cardData returns the test PANs and the CVV found in b.
func cardData(b []byte) []string {
	var out []string
	b = timestamp.ReplaceAll(b, nil)
	for _, run := range digitRun.FindAll(b, -1) {
		switch string(run) {
		case "4111111111111111", "378282246310005", "5555555555554444", "4000000000000002", "737":
			out = append(out, string(run))
		}
	}
	return out
}

func stringOf(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

// TestUnavailable: Vault or the acquirer out of reach is retryable
// (capture.ErrUnavailable), other failures are not, and nothing configured
// is capture.ErrNotConfigured.
func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	c := card("4111111111111111", "1230", "737", capture.BrandVisa)
	req := capture.PaymentRequest{Amount: 100, Currency: "EUR"}

	_, err := (&Service{Vault: &fakeVault{err: tokenize.ErrUnavailable}}).Tokenize(ctx, c, req)
	if !errors.Is(err, capture.ErrUnavailable) {
		t.Errorf("vault down: %v, want ErrUnavailable", err)
	}
	_, err = (&Service{Vault: &fakeVault{err: errors.New("permission denied")}}).Tokenize(ctx, c, req)
	if err == nil || errors.Is(err, capture.ErrUnavailable) {
		t.Errorf("vault refusal: %v, want a final error", err)
	}
	if _, err := (&Service{}).Tokenize(ctx, c, req); !errors.Is(err, capture.ErrNotConfigured) {
		t.Errorf("no vault: %v", err)
	}
	if _, err := (&Service{}).Authorize(ctx, c, "tok", req); !errors.Is(err, capture.ErrNotConfigured) {
		t.Errorf("no psp: %v", err)
	}

	// An acquirer that is down: the pool cannot connect, nothing is sent.
	conn, err := psp.NewISO(psp.Config{Addrs: []string{"127.0.0.1:1"}, Terminal: "T1", Merchant: "M1",
		ConnectTimeout: 200 * time.Millisecond, Timeout: 300 * time.Millisecond}, testStore(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = (&Service{Vault: &fakeVault{}, PSP: conn}).Authorize(ctx, c, "tok", req)
	if !errors.Is(err, capture.ErrUnavailable) {
		t.Errorf("acquirer down: %v, want ErrUnavailable", err)
	}
}
