package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/store"
)

// TestEndPaymentsOfDeadNode: a survivor ends the dead node's live
// payments, and only those, each once with its webhook event, however
// many survivors do it.
func TestEndPaymentsOfDeadNode(t *testing.T) {
	cfg := store.DefaultConfig()
	cfg.SQLite.Path = filepath.Join(t.TempDir(), "tv.db")
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	put := func(id, node, state string) {
		v := capture.View{ID: id, CallID: "c-" + node + "-abcdefghijklmnop", State: capture.State(state), Amount: 100, Currency: "GBP", Version: 1, CreatedAt: now, UpdatedAt: now}
		if err := capture.NewJournal(st, capture.JournalOptions{Node: node}).Save(context.Background(), v); err != nil {
			t.Fatal(err)
		}
	}
	put("pay_dead_live", "gw2", "collecting")
	put("pay_dead_done", "gw2", "approved")
	put("pay_alive_live", "gw3", "collecting")
	// Each survivor builds its own event for the payment's next version,
	// with an id of its own: only the write that wins queues one.
	var survivor atomic.Int32
	ev := func(v capture.View) []store.OutboxEvent {
		if !v.State.Final() {
			return nil
		}
		return []store.OutboxEvent{{ID: fmt.Sprintf("evt_%s_%d_%d", v.ID, v.Version, survivor.Add(1)), Kind: "payment.failed", PaymentID: v.ID, Body: []byte(`{}`), MaxAttempts: 3}}
	}
	var wg sync.WaitGroup
	for range 4 { // survivors at once
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := endPaymentsOf(context.Background(), st, "gw2", ev, zap.NewNop()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	want := map[string]string{"pay_dead_live": "failed", "pay_dead_done": "approved", "pay_alive_live": "collecting"}
	for id, state := range want {
		p, err := st.GetPayment(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if p.State != state {
			t.Errorf("%s is %s, want %s", id, p.State, state)
		}
		if id == "pay_dead_live" && p.Reason != string(capture.ReasonGatewayRestarted) {
			t.Errorf("reason %q", p.Reason)
		}
	}
	page, err := st.ListOutbox(context.Background(), store.OutboxQuery{State: store.OutboxPending})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].PaymentID != "pay_dead_live" {
		t.Errorf("outbox %+v, want one event for pay_dead_live", page.Events)
	}
}
