package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func testEvent(id string) OutboxEvent {
	return OutboxEvent{ID: id, Kind: "payment.approved", PaymentID: "pay-1",
		Body: []byte(`{"id":"` + id + `","payment":{"masked":"411111******1111"}}`), MaxAttempts: 3}
}

// TestOutboxRelease: a worker stopping mid-delivery gives its lease up:
// the event is due again at once, its attempts unchanged; only the
// holder can.
func TestOutboxRelease(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ *clock) {
		c := ctx(t)
		if _, err := s.EnqueueOutbox(c, testEvent("evt_pay-1_7")); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ClaimOutbox(c, "node-a", 1, time.Hour); err != nil || len(got) != 1 {
			t.Fatalf("claim: %v %v", ids(got), err)
		}
		if err := s.ReleaseOutbox(c, "evt_pay-1_7", "node-b"); !errors.Is(err, ErrNotLeased) {
			t.Errorf("released by another owner: %v", err)
		}
		if err := s.ReleaseOutbox(c, "evt_pay-1_7", "node-a"); err != nil {
			t.Fatal(err)
		}
		got, err := s.ClaimOutbox(c, "node-b", 1, time.Hour)
		if err != nil || len(got) != 1 || got[0].Attempts != 0 {
			t.Fatalf("after the release: %+v, %v", got, err)
		}
	})
}

func TestOutboxDelivery(t *testing.T) {
	each(t, func(t *testing.T, s *Store, clk *clock) {
		c := ctx(t)
		for _, id := range []string{"evt_pay-1_7", "evt_pay-2_3"} {
			if ok, err := s.EnqueueOutbox(c, testEvent(id)); err != nil || !ok {
				t.Fatalf("enqueue %s: %v %v", id, ok, err)
			}
		}
		// A second enqueue of the same event (a restart that sees the
		// same outcome) is not a second event.
		if ok, err := s.EnqueueOutbox(c, testEvent("evt_pay-1_7")); err != nil || ok {
			t.Fatalf("enqueue again: %v %v", ok, err)
		}
		got, err := s.ClaimOutbox(c, "node-a", 10, time.Minute)
		if err != nil || len(got) != 2 || got[0].ID != "evt_pay-1_7" || got[1].ID != "evt_pay-2_3" {
			t.Fatalf("node-a claimed %v, %v", ids(got), err)
		}
		if e := got[0]; string(e.Body) != string(testEvent("evt_pay-1_7").Body) || e.LeaseOwner != "node-a" || e.State != OutboxPending {
			t.Errorf("claimed %+v", e)
		}
		if more, _ := s.ClaimOutbox(c, "node-b", 10, time.Minute); len(more) != 0 {
			t.Fatalf("node-b claimed leased events %v", ids(more))
		}
		if err := s.MarkDelivered(c, "evt_pay-1_7", 204); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkDelivered(c, "evt_pay-1_7", 204); err != nil {
			t.Errorf("delivered twice: %v", err)
		}
		if err := s.MarkDelivered(c, "evt_none", 204); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown event: %v", err)
		}

		// node-a crashes holding evt_pay-2_3: after the lease, node-b
		// gets it, with the same id and body (at least once).
		clk.Advance(time.Minute)
		again, err := s.ClaimOutbox(c, "node-b", 10, time.Minute)
		if err != nil || len(again) != 1 || again[0].ID != "evt_pay-2_3" || string(again[0].Body) != string(got[1].Body) {
			t.Fatalf("after node-a's lease: %v, %v", ids(again), err)
		}
		if _, err := s.MarkFailed(c, "evt_pay-2_3", "node-a", DeliveryFailure{Status: 500}); !errors.Is(err, ErrNotLeased) {
			t.Errorf("node-a failed an event node-b holds: %v", err)
		}
		if err := s.MarkDelivered(c, "evt_pay-2_3", 200); err != nil {
			t.Fatal(err)
		}
		if more, _ := s.ClaimOutbox(c, "node-a", 10, time.Minute); len(more) != 0 {
			t.Errorf("delivered events claimed again: %v", ids(more))
		}
		page, err := s.ListOutbox(c, OutboxQuery{State: OutboxDelivered})
		if err != nil || len(page.Events) != 2 {
			t.Fatalf("delivered: %v, %v", ids(page.Events), err)
		}
		clk.Advance(time.Hour)
		if n, err := s.PruneOutbox(c, clk.Now().Add(-time.Minute)); err != nil || n != 2 {
			t.Errorf("pruned %d, %v", n, err)
		}
	})
}

func TestOutboxRetryAndDeadLetter(t *testing.T) {
	each(t, func(t *testing.T, s *Store, clk *clock) {
		c := ctx(t)
		if _, err := s.EnqueueOutbox(c, testEvent("evt_1")); err != nil {
			t.Fatal(err)
		}
		backoff := DefaultConfig().Outbox.Backoff
		for attempt := 1; attempt <= 3; attempt++ {
			got, err := s.ClaimOutbox(c, "node-a", 1, time.Minute)
			if err != nil || len(got) != 1 {
				t.Fatalf("attempt %d: claimed %v, %v", attempt, ids(got), err)
			}
			e, err := s.MarkFailed(c, "evt_1", "node-a", DeliveryFailure{Status: 503, Error: "receiver said 503 for card 4111111111111111"})
			if err != nil {
				t.Fatal(err)
			}
			if e.Attempts != attempt || e.LastStatus != 503 || e.LeaseOwner != "" {
				t.Errorf("after attempt %d: %+v", attempt, e)
			}
			if strings.Contains(e.LastError, "4111111111111111") || !strings.Contains(e.LastError, "411111******1111") {
				t.Errorf("last error %q: want the card number masked", e.LastError)
			}
			if attempt == 3 {
				if e.State != OutboxDead {
					t.Fatalf("after max attempts: %s", e.State)
				}
				break
			}
			// Due again after a backoff that doubles: within
			// [d/2, d] for d = backoff << (attempt-1).
			d := backoff << (attempt - 1)
			wait := e.NextAttemptAt.Sub(clk.Now())
			if e.State != OutboxPending || wait < d/2 || wait > d {
				t.Fatalf("after attempt %d: %s, due in %v; want pending, due in [%v, %v]", attempt, e.State, wait, d/2, d)
			}
			if early, _ := s.ClaimOutbox(c, "node-a", 1, time.Minute); len(early) != 0 {
				t.Fatalf("claimed before its backoff: %v", ids(early))
			}
			clk.Advance(wait)
		}
		clk.Advance(time.Hour)
		if got, _ := s.ClaimOutbox(c, "node-a", 1, time.Minute); len(got) != 0 {
			t.Fatalf("a dead event was claimed: %v", ids(got))
		}
		dead, err := s.ListOutbox(c, OutboxQuery{State: OutboxDead})
		if err != nil || len(dead.Events) != 1 || dead.Events[0].ID != "evt_1" || dead.Events[0].Attempts != 3 {
			t.Fatalf("dead letters: %+v, %v", dead.Events, err)
		}
		// The operator's redrive: due now, with fresh attempts.
		if err := s.RequeueOutbox(c, "evt_1"); err != nil {
			t.Fatal(err)
		}
		if err := s.RequeueOutbox(c, "evt_1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("requeue of a live event: %v", err)
		}
		got, err := s.ClaimOutbox(c, "node-b", 1, time.Minute)
		if err != nil || len(got) != 1 || got[0].Attempts != 0 {
			t.Fatalf("after requeue: %+v, %v", got, err)
		}
		// A permanent failure is dead at once; Retry-After replaces the backoff.
		e, err := s.MarkFailed(c, "evt_1", "node-b", DeliveryFailure{Status: 410, Permanent: true})
		if err != nil || e.State != OutboxDead || e.Attempts != 1 {
			t.Fatalf("permanent failure: %+v, %v", e, err)
		}
		if _, err := s.EnqueueOutbox(c, testEvent("evt_2")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ClaimOutbox(c, "node-b", 1, time.Minute); err != nil {
			t.Fatal(err)
		}
		e, err = s.MarkFailed(c, "evt_2", "node-b", DeliveryFailure{Status: 429, RetryAfter: 42 * time.Second})
		if err != nil || e.NextAttemptAt.Sub(clk.Now()) != 42*time.Second {
			t.Errorf("retry-after: due %v, %v", e.NextAttemptAt.Sub(clk.Now()), err)
		}
		got1, err := s.GetOutbox(c, "evt_2")
		if err != nil || got1.Attempts != 1 {
			t.Errorf("get: %+v %v", got1, err)
		}
	})
}

func TestOutboxPaging(t *testing.T) {
	each(t, func(t *testing.T, s *Store, clk *clock) {
		c := ctx(t)
		for i := range 5 {
			e := testEvent(fmt.Sprintf("evt_%d", i))
			e.MaxAttempts = 1
			if _, err := s.EnqueueOutbox(c, e); err != nil {
				t.Fatal(err)
			}
			clk.Advance(time.Second)
		}
		claimed, err := s.ClaimOutbox(c, "n", 10, time.Minute)
		if err != nil || len(claimed) != 5 {
			t.Fatal(ids(claimed), err)
		}
		for _, e := range claimed {
			if _, err := s.MarkFailed(c, e.ID, "n", DeliveryFailure{}); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		q := OutboxQuery{State: OutboxDead, Limit: 2}
		for {
			page, err := s.ListOutbox(c, q)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ids(page.Events)...)
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
		if want := "evt_4 evt_3 evt_2 evt_1 evt_0"; strings.Join(got, " ") != want {
			t.Errorf("dead letters by page: %v, want %s", got, want)
		}
		if _, err := s.ListOutbox(c, OutboxQuery{State: OutboxDead, Cursor: encodeCursor(cursorPayments, 1, "x")}); !errors.Is(err, ErrBadCursor) {
			t.Errorf("payments cursor on the outbox: %v", err)
		}
		if _, err := s.ListOutbox(c, OutboxQuery{State: "lost"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("unknown state: %v", err)
		}
	})
}

func TestOutboxRefused(t *testing.T) {
	s := openT(t, backends[0].config(t))
	tests := []struct {
		name   string
		change func(e *OutboxEvent)
		want   error
	}{
		{"card in body", func(e *OutboxEvent) { e.Body = []byte(`{"pan":"5555555555554444"}`) }, ErrCardData},
		{"card as id", func(e *OutboxEvent) { e.ID = "378282246310005" }, ErrCardData},
		{"bad kind", func(e *OutboxEvent) { e.Kind = "Payment Approved" }, ErrInvalid},
		{"no attempts", func(e *OutboxEvent) { e.MaxAttempts = 0 }, ErrInvalid},
		{"body not UTF-8", func(e *OutboxEvent) { e.Body = []byte{0xff} }, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := testEvent("evt_1")
			tt.change(&e)
			if _, err := s.EnqueueOutbox(ctx(t), e); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	for _, bad := range []struct {
		owner string
		max   int
		d     time.Duration
	}{{"", 1, time.Second}, {"n", 0, time.Second}, {"n", 1, 0}} {
		if _, err := s.ClaimOutbox(ctx(t), bad.owner, bad.max, bad.d); !errors.Is(err, ErrInvalid) {
			t.Errorf("claim %+v: %v", bad, err)
		}
	}
}

func ids(evs []OutboxEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}
