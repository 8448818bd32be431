package payment

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/internal/pan"
	"github.com/tonevault/tonevault/internal/secret"
	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/psp/sim"
	"github.com/tonevault/tonevault/test/vaultserver"
	"github.com/tonevault/tonevault/tokenize"
)

// BenchmarkSubmit is what a payment's Submit costs without HTTP: a new card
// tokenized in a real Vault dev server (AppRole login with the gateway's
// policy) and authorized by psp-sim over the ISO 8583 connector. Run it
// with -cpu to vary the number of agents submitting at once; it reports
// payments/s and the latency percentiles.
func BenchmarkSubmit(b *testing.B) {
	srv := vaultserver.Start(b)
	ctx := context.Background()
	cfg := tokenize.DefaultConfig()
	cfg.Address = srv.Addr
	res, err := tokenize.Setup(ctx, srv.Client, cfg)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	sid := filepath.Join(dir, "secret-id")
	if err := os.WriteFile(sid, []byte(res.SecretID), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg.Auth.Method, cfg.Auth.RoleID, cfg.Auth.SecretIDFile = "approle", res.RoleID, sid
	v, err := tokenize.New(ctx, cfg, tokenize.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	acq, err := sim.Listen("127.0.0.1:0", sim.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer acq.Close()
	addrs := []string{acq.Addr(), acq.Addr(), acq.Addr(), acq.Addr()}
	conn, err := psp.NewISO(psp.Config{Addrs: addrs, Terminal: "TV000001", Merchant: "TONEVAULT0001"}, testStore(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := conn.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	p := &Service{Vault: v, PSP: conn}
	req := capture.PaymentRequest{Amount: 1999, Currency: "GBP", MerchantRef: "bench"}

	var seq atomic.Int64
	lat := make(chan time.Duration, b.N)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// A new card each time (the slow path in Vault): Visa test
			// range with a computed check digit.
			pan := newCard(seq.Add(1))
			c := &capture.Card{PAN: pan, Expiry: secret.New([]byte("1230")), CVV: secret.New([]byte("737")), Brand: capture.BrandVisa}
			t0 := time.Now()
			tok, err := p.Tokenize(ctx, c, req)
			if err == nil {
				var r capture.Result
				r, err = p.Authorize(ctx, c, tok, req)
				if err == nil && r.Outcome != capture.OutcomeApproved {
					err = fmt.Errorf("outcome %s %s", r.Outcome, r.Reason)
				}
			}
			lat <- time.Since(t0)
			c.PAN.Wipe()
			c.CVV.Wipe()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	close(lat)
	var ds []time.Duration
	for d := range lat {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	if len(ds) > 0 {
		b.ReportMetric(float64(len(ds))/elapsed.Seconds(), "payments/s")
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// newCard returns a Luhn-valid 16-digit Visa number from the 4111 11 test
// range, unique per n.
func newCard(n int64) secret.Secret {
	b := []byte(fmt.Sprintf("411111%09d0", n%1_000_000_000))
	for d := byte('0'); d <= '9'; d++ {
		b[15] = d
		if pan.Luhn(b) {
			break
		}
	}
	return secret.Wrap(b)
}
