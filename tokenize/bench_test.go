package tokenize

import (
	"crypto/rand"
	"testing"

	"github.com/tonevault/tonevault/internal/secret"
	"github.com/tonevault/tonevault/test/vaultserver"
)

// benchPAN makes a Luhn-valid 16-digit number in the unassigned "000000"
// range (no issuer uses major industry identifier 0): distinct cards for
// the new-card path without touching any real card number space.
func benchPAN(b *testing.B) secret.Secret {
	pan := []byte("0000000000000000")
	var r [9]byte
	if _, err := rand.Read(r[:]); err != nil {
		b.Fatal(err)
	}
	for i := range r {
		pan[6+i] = '0' + r[i]%10
	}
	for d := byte('0'); d <= '9'; d++ {
		pan[15] = d
		if luhnValid(pan) {
			break
		}
	}
	return secret.Wrap(pan)
}

// BenchmarkTokenize measures tokenizations against a local dev Vault, as
// the gateway (policy-only token). Report ns/op (latency) and tok/s.
func BenchmarkTokenize(b *testing.B) {
	e := newEnv(b, vaultserver.Options{}, nil)
	ctx := testCtx(b)
	b.Run("new-card", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			pan := benchPAN(b)
			b.StartTimer()
			if _, err := e.v.Tokenize(ctx, pan, sec("1230"), "test", "m"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
	})
	b.Run("same-card", func(b *testing.B) {
		pan := sec("4111111111111111")
		for b.Loop() {
			if _, err := e.v.Tokenize(ctx, pan, sec("1230"), "visa", "m"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
	})
	// A store that gateways wrote before token paths came from lookup
	// keys: a new card is also looked up in the old index.
	b.Run("new-card-indexed-store", func(b *testing.B) {
		e.dropLayoutMarker(b)
		v := e.gateway(b, e.cfg)
		for b.Loop() {
			b.StopTimer()
			pan := benchPAN(b)
			b.StartTimer()
			if _, err := v.Tokenize(ctx, pan, sec("1230"), "test", "m"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
	})
	b.Run("parallel-new-card", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := e.v.Tokenize(ctx, benchPAN(b), sec("1230"), "test", "m"); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
	})
}
