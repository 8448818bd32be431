package store

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

// testPayment is a payment as the gateway would store it mid-capture.
func testPayment(id, call string, version uint64) Payment {
	return Payment{
		ID: id, CallID: call, State: "collecting", Amount: 1250, Currency: "GBP",
		MerchantRef: "order 7", Description: "Renewal", Merchant: "acme",
		Correlation: map[string]string{"X-Interaction-ID": "int-" + call},
		Node:        "gw-1", Snapshot: `{"id":"` + id + `","fields":[{"name":"card_number","masked":"411111••••••1111"}]}`,
		Version: version, CreatedAt: t0, UpdatedAt: t0.Add(time.Duration(version) * time.Second),
		ExpiresAt: t0.Add(10 * time.Minute),
	}
}

// approved is p after an approved authorization.
func approved(p Payment, version uint64) Payment {
	p.State, p.Final, p.Version = "approved", true, version
	p.Brand, p.MaskedPAN, p.Token = "visa", "411111******1111", "4111114829171111"
	p.Outcome, p.AuthCode, p.ResponseCode, p.Reason = "approved", "A1B2C3", "00", "approved"
	p.EntryMode, p.ConditionCode, p.Field60 = "012", "08", "0000000001"
	p.UpdatedAt = p.UpdatedAt.Add(time.Minute)
	return p
}

func TestPayments(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ *clock) {
		c := ctx(t)
		p := testPayment("pay-1", "call-1", 1)
		if ok, err := s.UpsertPayment(c, p); err != nil || !ok {
			t.Fatalf("insert: %v %v", ok, err)
		}
		got, err := s.GetPayment(c, "pay-1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("got %+v\nwant %+v", got, p)
		}
		done := approved(p, 5)
		done.Correlation = map[string]string{"X-Interaction-ID": "changed"}
		if ok, err := s.UpsertPayment(c, done); err != nil || !ok {
			t.Fatalf("update: %v %v", ok, err)
		}
		// Out of order: an older version and the same version change nothing.
		for _, v := range []uint64{3, 5} {
			old := testPayment("pay-1", "call-1", v)
			if ok, err := s.UpsertPayment(c, old); err != nil || ok {
				t.Errorf("version %d after 5: applied %v, %v", v, ok, err)
			}
		}
		moved := approved(testPayment("pay-1", "call-2", 9), 9)
		if ok, err := s.UpsertPayment(c, moved); err != nil || ok {
			t.Errorf("move to another call: applied %v, %v", ok, err)
		}
		got, err = s.GetPayment(c, "pay-1")
		if err != nil {
			t.Fatal(err)
		}
		want := done
		want.Correlation = p.Correlation // written with the first version only
		if !reflect.DeepEqual(got, want) {
			t.Errorf("after updates got %+v\nwant %+v", got, want)
		}
		if _, err := s.GetPayment(c, "pay-none"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing payment: %v", err)
		}
	})
}

func TestLivePayment(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ *clock) {
		c := ctx(t)
		first := approved(testPayment("pay-1", "call-1", 1), 2)
		second := testPayment("pay-2", "call-1", 1)
		second.CreatedAt = t0.Add(time.Minute)
		other := testPayment("pay-3", "call-2", 1)
		for _, p := range []Payment{first, second, other} {
			if _, err := s.UpsertPayment(c, p); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.LivePayment(c, "call-1")
		if err != nil || got.ID != "pay-2" {
			t.Fatalf("live payment of call-1: %s, %v; want pay-2", got.ID, err)
		}
		second = approved(second, 2)
		second.State, second.Outcome = "declined", "declined"
		if _, err := s.UpsertPayment(c, second); err != nil {
			t.Fatal(err)
		}
		if got, err := s.LivePayment(c, "call-1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after both ended: %s, %v; want ErrNotFound", got.ID, err)
		}
	})
}

func TestListPayments(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ *clock) {
		c := ctx(t)
		// Seven payments on call-a, two of them created at the same
		// instant (the id breaks the tie), three on call-b.
		var idsA []string
		for i := range 7 {
			p := testPayment(fmt.Sprintf("pay-a%d", i), "call-a", 1)
			p.CreatedAt = t0.Add(time.Duration(min(i, 5)) * time.Second)
			p.Correlation = map[string]string{"X-Interaction-ID": "int-a", "User-to-User": fmt.Sprintf("uui-%d", i)}
			if _, err := s.UpsertPayment(c, p); err != nil {
				t.Fatal(err)
			}
			idsA = append(idsA, p.ID)
		}
		for i := range 3 {
			p := testPayment(fmt.Sprintf("pay-b%d", i), "call-b", 1)
			p.CreatedAt = t0.Add(time.Duration(i) * time.Second)
			p.Correlation = map[string]string{"X-Interaction-ID": "int-b"}
			if _, err := s.UpsertPayment(c, p); err != nil {
				t.Fatal(err)
			}
		}
		newestFirst := slices.Clone(idsA)
		slices.Reverse(newestFirst)

		tests := []struct {
			name string
			q    PaymentQuery
			want []string
		}{
			{"by call", PaymentQuery{CallID: "call-a"}, newestFirst},
			{"by correlation", PaymentQuery{Correlation: map[string]string{"X-Interaction-ID": "int-a"}}, newestFirst},
			{"header name without case", PaymentQuery{Correlation: map[string]string{"x-interaction-id": "int-b"}}, []string{"pay-b2", "pay-b1", "pay-b0"}},
			{"two headers", PaymentQuery{Correlation: map[string]string{"X-Interaction-ID": "int-a", "User-to-User": "uui-3"}}, []string{"pay-a3"}},
			{"two headers, one wrong", PaymentQuery{Correlation: map[string]string{"X-Interaction-ID": "int-b", "User-to-User": "uui-3"}}, nil},
			{"any header", PaymentQuery{Correlation: map[string]string{"": "uui-4"}}, []string{"pay-a4"}},
			{"call and correlation", PaymentQuery{CallID: "call-b", Correlation: map[string]string{"X-Interaction-ID": "int-a"}}, nil},
			{"no such call", PaymentQuery{CallID: "call-z"}, nil},
		}
		for _, tt := range tests {
			for _, limit := range []int{0, 1, 3, 7} {
				t.Run(fmt.Sprintf("%s/limit %d", tt.name, limit), func(t *testing.T) {
					q := tt.q
					q.Limit = limit
					var got []string
					for pages := 0; ; pages++ {
						if pages > 10 {
							t.Fatal("paging does not end")
						}
						page, err := s.ListPayments(c, q)
						if err != nil {
							t.Fatal(err)
						}
						if limit > 0 && len(page.Payments) > limit {
							t.Fatalf("page of %d, limit %d", len(page.Payments), limit)
						}
						for _, p := range page.Payments {
							got = append(got, p.ID)
						}
						if page.Next == "" {
							break
						}
						q.Cursor = page.Next
					}
					if !slices.Equal(got, tt.want) {
						t.Errorf("got %v, want %v", got, tt.want)
					}
				})
			}
		}

		// A payment created while a client pages is not seen twice.
		page, err := s.ListPayments(c, PaymentQuery{CallID: "call-a", Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		late := testPayment("pay-a9", "call-a", 1)
		late.CreatedAt = t0.Add(time.Hour)
		if _, err := s.UpsertPayment(c, late); err != nil {
			t.Fatal(err)
		}
		next, err := s.ListPayments(c, PaymentQuery{CallID: "call-a", Limit: 3, Cursor: page.Next})
		if err != nil {
			t.Fatal(err)
		}
		if ids := []string{next.Payments[0].ID, next.Payments[2].ID}; !slices.Equal(ids, []string{newestFirst[3], newestFirst[5]}) {
			t.Errorf("second page after an insert starts and ends with %v", ids)
		}
		if got := page.Payments[0].Correlation["User-to-User"]; got != "uui-6" {
			t.Errorf("listed payment's correlation %v", page.Payments[0].Correlation)
		}

		for _, bad := range []PaymentQuery{
			{Cursor: "not a cursor"},
			{Cursor: encodeCursor(cursorOutbox, 1, "evt")},
			{Cursor: encodeCursor(cursorPayments, 1, "")},
		} {
			if _, err := s.ListPayments(c, bad); !errors.Is(err, ErrBadCursor) {
				t.Errorf("cursor %q: %v, want ErrBadCursor", bad.Cursor, err)
			}
		}
		for _, limit := range []int{-1, MaxPageSize + 1} {
			if _, err := s.ListPayments(c, PaymentQuery{Limit: limit}); !errors.Is(err, ErrInvalid) {
				t.Errorf("limit %d: %v, want ErrInvalid", limit, err)
			}
		}
	})
}

// TestPaymentEvents: the events given with a payment are queued with it
// in one transaction, only when the payment is written, and not at all
// when one of them is refused.
func TestPaymentEvents(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ *clock) {
		c := ctx(t)
		p := approved(testPayment("pay-1", "call-1", 1), 4)
		if ok, err := s.UpsertPayment(c, p, testEvent("evt_pay-1_4")); err != nil || !ok {
			t.Fatalf("upsert with event: %v %v", ok, err)
		}
		if e, err := s.GetOutbox(c, "evt_pay-1_4"); err != nil || e.State != OutboxPending || e.PaymentID != "pay-1" {
			t.Fatalf("event queued with the payment: %+v, %v", e, err)
		}
		// A stale version writes nothing, its event included.
		if ok, err := s.UpsertPayment(c, approved(testPayment("pay-1", "call-1", 1), 3), testEvent("evt_pay-1_3")); err != nil || ok {
			t.Fatalf("stale upsert: %v %v", ok, err)
		}
		if _, err := s.GetOutbox(c, "evt_pay-1_3"); !errors.Is(err, ErrNotFound) {
			t.Errorf("the event of a payment not written was queued: %v", err)
		}
		// A refused event refuses the payment.
		bad := testEvent("evt_pay-1_5")
		bad.Body = []byte(`{"card":"4111111111111111"}`)
		if _, err := s.UpsertPayment(c, approved(testPayment("pay-1", "call-1", 1), 5), bad); !errors.Is(err, ErrCardData) {
			t.Fatalf("refused event: %v, want ErrCardData", err)
		}
		if got, _ := s.GetPayment(c, "pay-1"); got.Version != 4 {
			t.Errorf("payment written with a refused event: version %d", got.Version)
		}
		// An event queued already stays as it was.
		again := testEvent("evt_pay-1_4")
		again.Body = []byte(`{"other":true}`)
		if _, err := s.UpsertPayment(c, approved(testPayment("pay-1", "call-1", 1), 6), again); err != nil {
			t.Fatal(err)
		}
		if e, _ := s.GetOutbox(c, "evt_pay-1_4"); string(e.Body) == string(again.Body) {
			t.Error("a queued event was replaced")
		}
	})
}

// TestLiveByNode: the live payments of one gateway, for the sweep of a
// gateway that restarts.
func TestLiveByNode(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ *clock) {
		c := ctx(t)
		mine := testPayment("pay-1", "call-1", 1)
		ended := approved(testPayment("pay-2", "call-2", 1), 2)
		theirs := testPayment("pay-3", "call-3", 1)
		theirs.Node = "gw-2"
		for _, p := range []Payment{mine, ended, theirs} {
			if _, err := s.UpsertPayment(c, p); err != nil {
				t.Fatal(err)
			}
		}
		for _, tt := range []struct {
			q    PaymentQuery
			want []string
		}{
			{PaymentQuery{Live: true, Node: "gw-1"}, []string{"pay-1"}},
			{PaymentQuery{Live: true}, []string{"pay-3", "pay-1"}},
			{PaymentQuery{Node: "gw-1"}, []string{"pay-2", "pay-1"}},
		} {
			page, err := s.ListPayments(c, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range page.Payments {
				got = append(got, p.ID)
			}
			slices.Sort(got)
			slices.Sort(tt.want)
			if !slices.Equal(got, tt.want) {
				t.Errorf("%+v: %v, want %v", tt.q, got, tt.want)
			}
		}
	})
}

// TestPaymentRefused: values that are not what their column holds are
// refused with an error naming the column, and a card number anywhere is
// reported as card data.
func TestPaymentRefused(t *testing.T) {
	s := openT(t, backends[0].config(t))
	tests := []struct {
		name   string
		change func(p *Payment)
		want   error
		column string
	}{
		{"no id", func(p *Payment) { p.ID = "" }, ErrInvalid, "payments.id"},
		{"card number as id", func(p *Payment) { p.ID = "4111111111111111" }, ErrCardData, "payments.id"},
		{"bad state", func(p *Payment) { p.State = "Approved!" }, ErrInvalid, "payments.state"},
		{"bad reason", func(p *Payment) { p.Reason = "declined 05" }, ErrInvalid, "payments.reason"},
		{"bad node", func(p *Payment) { p.Node = "gw 1" }, ErrInvalid, "payments.node"},
		{"card in snapshot", func(p *Payment) { p.Snapshot = `{"masked":"4111111111111111"}` }, ErrCardData, "payments.snapshot"},
		{"long snapshot", func(p *Payment) { p.Snapshot = string(make([]byte, maxSnapshot+1)) }, ErrInvalid, "payments.snapshot"},
		{"bad currency", func(p *Payment) { p.Currency = "pounds" }, ErrInvalid, "payments.currency"},
		{"card in description", func(p *Payment) { p.Description = "card 4111 1111 1111 1111" }, ErrCardData, "payments.description"},
		{"card in reference", func(p *Payment) { p.MerchantRef = "5555555555554444" }, ErrCardData, "payments.merchant_ref"},
		{"card in merchant", func(p *Payment) { p.Merchant = "378282246310005" }, ErrCardData, "payments.merchant"},
		{"unmasked card", func(p *Payment) { p.MaskedPAN = "4111111111111111" }, ErrCardData, "payments.masked_pan"},
		{"mask shows too much", func(p *Payment) { p.MaskedPAN = "4111111*****1111" }, ErrInvalid, "payments.masked_pan"},
		{"card as token", func(p *Payment) { p.Token = "4111111111111111" }, ErrCardData, "payments.token"},
		{"card as auth code", func(p *Payment) { p.AuthCode = "4111111111111111" }, ErrCardData, "payments.auth_code"},
		{"card as amount", func(p *Payment) { p.Amount = 4111111111111111 }, ErrCardData, "payments.amount"},
		{"negative amount", func(p *Payment) { p.Amount = -1 }, ErrInvalid, "payments.amount"},
		{"card in correlation", func(p *Payment) { p.Correlation = map[string]string{"X-Interaction-ID": "4111-1111-1111-1111"} }, ErrCardData, "payment_correlations.value"},
		{"bad header name", func(p *Payment) { p.Correlation = map[string]string{"X Bad": "v"} }, ErrInvalid, "payment_correlations.name"},
		{"long description", func(p *Payment) { p.Description = string(make([]byte, maxText+1)) }, ErrInvalid, "payments.description"},
		{"no creation time", func(p *Payment) { p.CreatedAt = time.Time{} }, ErrInvalid, "payments.created_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := approved(testPayment("pay-1", "call-1", 1), 1)
			tt.change(&p)
			_, err := s.UpsertPayment(ctx(t), p)
			if !errors.Is(err, tt.want) || !containsStr(err, tt.column) {
				t.Fatalf("err = %v, want %v naming %s", err, tt.want, tt.column)
			}
			if containsStr(err, "4111") || containsStr(err, "5555") || containsStr(err, "3782") {
				t.Errorf("error shows the value: %v", err)
			}
		})
	}
	if _, err := s.GetPayment(ctx(t), "pay-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused payment was written: %v", err)
	}
	// The check can pass: the same payment, unchanged, is written, and
	// so is a decline with a response code the gateway has no name for.
	if _, err := s.UpsertPayment(ctx(t), approved(testPayment("pay-1", "call-1", 1), 1)); err != nil {
		t.Fatal(err)
	}
	p := approved(testPayment("pay-1", "call-1", 1), 2)
	p.State, p.Outcome, p.Reason, p.ResponseCode, p.AuthCode = "declined", "declined", "declined_Q9", "Q9", ""
	if _, err := s.UpsertPayment(ctx(t), p); err != nil {
		t.Fatal(err)
	}
}

func containsStr(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}
