package store

import (
	"fmt"
	"testing"
	"time"
)

// benchStore opens a fresh store of backend b on the real clock.
func benchStore(tb testing.TB, b backend) *Store {
	cfg := b.config(tb)
	return openT(tb, cfg)
}

// BenchmarkUpsertPayment: one payment's life as the gateway writes it,
// one upsert per op: a new payment every 8 ops, then 7 newer versions of
// it (each a durable commit: SQLite synchronous=FULL, PostgreSQL's
// default synchronous_commit).
func BenchmarkUpsertPayment(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s := benchStore(b, be)
			c := ctx(b)
			b.ReportAllocs()
			var p Payment
			for i := 0; b.Loop(); i++ {
				if i%8 == 0 {
					p = testPayment(fmt.Sprintf("pay-%d", i), fmt.Sprintf("call-%d", i), 0)
					p.CreatedAt = time.Now()
				}
				p.Version++
				if p.Version == 8 {
					p = approved(p, p.Version)
				}
				if ok, err := s.UpsertPayment(c, p); err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

// BenchmarkClaimOutbox: a worker's round on a queue of pending events,
// one event per op: claim a batch, mark each delivered. The queue is
// filled before the timer starts.
func BenchmarkClaimOutbox(b *testing.B) {
	for _, batch := range []int{1, 16} {
		for _, be := range backends {
			b.Run(fmt.Sprintf("%s/batch=%d", be.name, batch), func(b *testing.B) {
				s := benchStore(b, be)
				c := ctx(b)
				n := b.N
				for i := range n {
					if _, err := s.EnqueueOutbox(c, testEvent(fmt.Sprintf("evt_%d", i))); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				done := 0
				for done < n {
					evs, err := s.ClaimOutbox(c, "node-a", batch, time.Minute)
					if err != nil || len(evs) == 0 {
						b.Fatalf("claimed %d after %d of %d: %v", len(evs), done, n, err)
					}
					for _, e := range evs {
						if err := s.MarkDelivered(c, e.ID, 204); err != nil {
							b.Fatal(err)
						}
					}
					done += len(evs)
				}
			})
		}
	}
}
