package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func testReversal(stan string) Reversal {
	return Reversal{OrigMTI: "0100", STAN: stan, RRN: "634010" + stan, Transmission: "1206101500",
		LocalTime: "101500", LocalDate: "1206", ProcCode: "000000", Amount: 1250, Currency: "826",
		Terminal: "TVDEV001", Merchant: "TONEVAULTDEV01", Reference: "order 7", Reason: "psp_timeout", RevSTAN: "900001"}
}

func TestReversalQueue(t *testing.T) {
	each(t, func(t *testing.T, s *Store, clk *clock) {
		c := ctx(t)
		for i, stan := range []string{"000001", "000002", "000003"} {
			if ok, err := s.EnqueueReversal(c, testReversal(stan)); err != nil || !ok {
				t.Fatalf("enqueue: %v %v", ok, err)
			}
			clk.Advance(time.Duration(i+1) * time.Millisecond)
		}
		if ok, err := s.EnqueueReversal(c, testReversal("000001")); err != nil || ok {
			t.Errorf("enqueue again: %v %v", ok, err)
		}
		all, err := s.ListReversals(c)
		if err != nil || len(all) != 3 || all[0].STAN != "000001" || all[2].STAN != "000003" {
			t.Fatalf("list: %v, %v", stans(all), err)
		}
		want := testReversal("000001")
		want.CreatedAt, want.NextAttemptAt = all[0].CreatedAt, all[0].NextAttemptAt
		if all[0] != want {
			t.Errorf("stored %+v\nwant   %+v", all[0], want)
		}

		a, err := s.LeaseReversals(c, "node-a", 2, time.Minute)
		if err != nil || len(a) != 2 || a[0].STAN != "000001" || a[1].STAN != "000002" || a[0].LeaseOwner != "node-a" {
			t.Fatalf("node-a leased %v, %v", stans(a), err)
		}
		b, err := s.LeaseReversals(c, "node-b", 10, time.Minute)
		if err != nil || len(b) != 1 || b[0].STAN != "000003" {
			t.Fatalf("node-b leased %v, %v; want only the one node-a did not hold", stans(b), err)
		}
		if err := s.AckReversal(c, a[0].ID(), "node-b"); !errors.Is(err, ErrNotLeased) {
			t.Errorf("node-b acknowledged node-a's reversal: %v", err)
		}
		if err := s.AckReversal(c, a[0].ID(), "node-a"); err != nil {
			t.Fatal(err)
		}
		// node-b's send was not acknowledged: due again in 30 s, with the
		// attempt counted.
		if err := s.RetryReversal(c, b[0].ID(), "node-b", clk.Now().Add(30*time.Second)); err != nil {
			t.Fatal(err)
		}
		// node-a crashes holding 000002. Within its lease nobody gets it,
		// nor 000003 before its retry time.
		clk.Advance(20 * time.Second)
		if got, _ := s.LeaseReversals(c, "node-b", 10, time.Minute); len(got) != 0 {
			t.Fatalf("leased early: %v", stans(got))
		}
		clk.Advance(40 * time.Second)
		got, err := s.LeaseReversals(c, "node-b", 10, time.Minute)
		if err != nil || len(got) != 2 || got[0].STAN != "000002" || got[1].STAN != "000003" || got[1].Attempts != 1 {
			t.Fatalf("after the lease and the retry time: %+v, %v", got, err)
		}
		if err := s.AckReversal(c, got[0].ID(), "node-a"); !errors.Is(err, ErrNotLeased) {
			t.Errorf("the crashed node acknowledged after losing its lease: %v", err)
		}
		if err := s.RetryReversal(c, got[0].ID(), "node-a", clk.Now()); !errors.Is(err, ErrNotLeased) {
			t.Errorf("the crashed node retried after losing its lease: %v", err)
		}
		for _, r := range got {
			if err := s.AckReversal(c, r.ID(), "node-b"); err != nil {
				t.Fatal(err)
			}
		}
		if left, err := s.ListReversals(c); err != nil || len(left) != 0 {
			t.Errorf("left: %v, %v", stans(left), err)
		}
	})
}

// TestReversalLeasesConcurrent: two nodes lease from one queue at the same
// time; each reversal is leased, and so sent, by exactly one of them.
func TestReversalLeasesConcurrent(t *testing.T) {
	const n = 60
	each(t, func(t *testing.T, s *Store, _ *clock) {
		c := ctx(t)
		for i := range n {
			if _, err := s.EnqueueReversal(c, testReversal(fmt.Sprintf("%06d", i+1))); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		sentBy := map[string][]string{}
		var wg sync.WaitGroup
		for _, node := range []string{"node-a", "node-b"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// The clock does not move: no lease runs out, so a
				// reversal leased twice is a failure of the lease.
				for empty := 0; empty < 3; {
					rs, err := s.LeaseReversals(c, node, 3, time.Hour)
					if err != nil {
						t.Error(err)
						return
					}
					if len(rs) == 0 {
						empty++
						continue
					}
					for _, r := range rs {
						mu.Lock()
						sentBy[r.ID()] = append(sentBy[r.ID()], node)
						mu.Unlock()
						if err := s.AckReversal(c, r.ID(), node); err != nil {
							t.Error(err)
						}
					}
				}
			}()
		}
		wg.Wait()
		nodes := map[string]int{}
		for id, by := range sentBy {
			if len(by) != 1 {
				t.Errorf("reversal %s sent by %v", id, by)
			}
			nodes[by[0]]++
		}
		if len(sentBy) != n {
			t.Errorf("%d of %d reversals sent", len(sentBy), n)
		}
		t.Logf("reversals sent per node: %v", nodes)
		if left, _ := s.ListReversals(c); len(left) != 0 {
			t.Errorf("%d left in the queue", len(left))
		}
	})
}

// TestReversalIntent: a reversal queued already leased is the
// write-ahead intent of a request in flight. No node leases it while its
// owner holds it; the owner clears it on a definite answer, or releases it
// to be sent (as a first 0400: no attempt counted) when none comes; and if
// the owner dies, it is due for any node when the lease runs out.
func TestReversalIntent(t *testing.T) {
	each(t, func(t *testing.T, s *Store, clk *clock) {
		c := ctx(t)
		intent := func(stan string) Reversal {
			r := testReversal(stan)
			r.Reason, r.LeaseOwner, r.LeaseUntil = "psp_connection_lost", "node-a", clk.Now().Add(30*time.Second)
			return r
		}
		id := func(stan string) string { r := testReversal(stan); return r.ID() }
		for _, stan := range []string{"000001", "000002", "000003"} {
			if ok, err := s.EnqueueReversal(c, intent(stan)); err != nil || !ok {
				t.Fatalf("intent %s: %v %v", stan, ok, err)
			}
		}
		if got, err := s.LeaseReversals(c, "node-b", 10, time.Minute); err != nil || len(got) != 0 {
			t.Fatalf("another node leased intents in flight: %v, %v", stans(got), err)
		}
		all, _ := s.ListReversals(c)
		if len(all) != 3 || all[0].LeaseOwner != "node-a" || !all[0].LeaseUntil.Equal(clk.Now().Add(30*time.Second)) {
			t.Fatalf("listed %+v", all)
		}

		// 000001: a definite answer; the intent is cleared.
		if err := s.AckReversal(c, id("000001"), "node-b"); !errors.Is(err, ErrNotLeased) {
			t.Errorf("another node cleared the intent: %v", err)
		}
		if err := s.AckReversal(c, id("000001"), "node-a"); err != nil {
			t.Fatal(err)
		}
		// 000002: no answer in time; released, with the reason, due now.
		if err := s.ReleaseReversal(c, id("000002"), "node-b", "psp_timeout", clk.Now()); !errors.Is(err, ErrNotLeased) {
			t.Errorf("another node released the intent: %v", err)
		}
		if err := s.ReleaseReversal(c, id("000002"), "node-a", "timed out", clk.Now()); !errors.Is(err, ErrInvalid) {
			t.Errorf("a reason that is not a code: %v", err)
		}
		if err := s.ReleaseReversal(c, id("000002"), "node-a", "psp_timeout", clk.Now()); err != nil {
			t.Fatal(err)
		}
		got, err := s.LeaseReversals(c, "node-b", 10, time.Minute)
		if err != nil || len(got) != 1 || got[0].STAN != "000002" || got[0].Reason != "psp_timeout" || got[0].Attempts != 0 {
			t.Fatalf("after the release: %+v, %v", got, err)
		}
		// 000003: node-a died with it in flight. Due for anyone once the
		// lease runs out, with the reason it was written with.
		clk.Advance(30 * time.Second)
		got, err = s.LeaseReversals(c, "node-b", 10, time.Minute)
		if err != nil || len(got) != 1 || got[0].STAN != "000003" || got[0].Reason != "psp_connection_lost" {
			t.Fatalf("after node-a's lease ran out: %+v, %v", got, err)
		}
		if err := s.AckReversal(c, got[0].ID(), "node-a"); !errors.Is(err, ErrNotLeased) {
			t.Errorf("node-a cleared an intent it lost: %v", err)
		}
	})
}

// TestReversalEnqueuedAsGiven: a reversal moved from elsewhere keeps its
// attempts (its next send is a repeat) and its due time.
func TestReversalEnqueuedAsGiven(t *testing.T) {
	each(t, func(t *testing.T, s *Store, clk *clock) {
		c := ctx(t)
		r := testReversal("000007")
		r.Attempts, r.NextAttemptAt = 3, clk.Now().Add(time.Minute)
		if _, err := s.EnqueueReversal(c, r); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.LeaseReversals(c, "node-a", 1, time.Minute); len(got) != 0 {
			t.Fatalf("leased before its due time: %v", stans(got))
		}
		clk.Advance(time.Minute)
		got, err := s.LeaseReversals(c, "node-a", 1, time.Minute)
		if err != nil || len(got) != 1 || got[0].Attempts != 3 {
			t.Fatalf("%+v, %v", got, err)
		}
		for name, bad := range map[string]func(r *Reversal){
			"owner without lease": func(r *Reversal) { r.LeaseOwner = "node-a" },
			"lease without owner": func(r *Reversal) { r.LeaseUntil = clk.Now() },
			"owner not a name":    func(r *Reversal) { r.LeaseOwner, r.LeaseUntil = "node a", clk.Now() },
			"negative attempts":   func(r *Reversal) { r.Attempts = -1 },
		} {
			r := testReversal("000008")
			bad(&r)
			if _, err := s.EnqueueReversal(c, r); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
}

func TestReversalRefused(t *testing.T) {
	s := openT(t, backends[0].config(t))
	tests := []struct {
		name   string
		change func(r *Reversal)
		want   error
	}{
		{"stan", func(r *Reversal) { r.STAN = "12345" }, ErrInvalid},
		{"card as rrn", func(r *Reversal) { r.RRN = "4111111111111111" }, ErrCardData},
		{"card as merchant", func(r *Reversal) { r.Merchant = "378282246310005" }, ErrCardData},
		{"card in reference", func(r *Reversal) { r.Reference = "5555 5555 5555 4444" }, ErrCardData},
		{"card as transmission", func(r *Reversal) { r.Transmission = "4111111111111111" }, ErrCardData},
		{"card as amount", func(r *Reversal) { r.Amount = 5555555555554444 }, ErrCardData},
		{"reason", func(r *Reversal) { r.Reason = "timed out!" }, ErrInvalid},
		{"currency", func(r *Reversal) { r.Currency = "GBP" }, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testReversal("000001")
			tt.change(&r)
			if _, err := s.EnqueueReversal(ctx(t), r); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if left, _ := s.ListReversals(ctx(t)); len(left) != 0 {
		t.Errorf("refused reversals were queued: %v", stans(left))
	}
}

func stans(rs []Reversal) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.STAN)
	}
	return out
}
