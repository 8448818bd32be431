package api

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tonevault/tonevault/capture"
)

// fakePayments is a tiny stand-in for capture at the Payments boundary,
// for the HTTP-level tests; capture_test.go drives the real Manager.
type fakePayments struct {
	mu        sync.Mutex
	sessions  map[string]*fakeSession
	n         int
	submitErr error // what Submit returns (and does) next
	starts    int
}

func newFakePayments() *fakePayments { return &fakePayments{sessions: map[string]*fakeSession{}} }

func (f *fakePayments) Start(callID string, req capture.PaymentRequest, actor string) (Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sessions {
		if s.View().CallID == callID && !s.View().State.Final() {
			return nil, capture.ErrCallBusy
		}
	}
	f.n++
	f.starts++
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &fakeSession{f: f, v: capture.View{
		ID: fmt.Sprintf("pay_%d", f.n), CallID: callID, State: "collecting",
		Fields: []capture.FieldView{
			{Name: "card_number", Label: "Card number", Status: "collecting", MaxAttempts: 3},
			{Name: "expiry", Label: "Expiry", Status: "pending", MaxAttempts: 3},
			{Name: "security_code", Label: "Security code", Status: "pending", MaxAttempts: 3},
		},
		Amount: req.Amount, Currency: req.Currency, MerchantRef: req.MerchantRef, Description: req.Description,
		CreatedAt: now, UpdatedAt: now, Version: 1,
	}}
	f.sessions[s.v.ID] = s
	return s, nil
}

func (f *fakePayments) Get(id string) (Session, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[id]
	if !ok {
		return nil, false
	}
	return s, true
}

func (f *fakePayments) Live(callID string) (Session, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sessions {
		if v := s.View(); v.CallID == callID && !v.State.Final() {
			return s, true
		}
	}
	return nil, false
}

type fakeSession struct {
	f    *fakePayments
	mu   sync.Mutex
	v    capture.View
	subs map[chan capture.View]bool
}

func (s *fakeSession) View() capture.View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copyLocked()
}

func (s *fakeSession) copyLocked() capture.View {
	v := s.v
	v.Fields = append([]capture.FieldView(nil), s.v.Fields...)
	return v
}

func (s *fakeSession) Subscribe() (<-chan capture.View, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan capture.View, 1)
	if s.subs == nil {
		s.subs = map[chan capture.View]bool{}
	}
	s.subs[ch] = true
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.subs, ch)
	}
}

// change applies fn and tells the subscribers, latest wins.
func (s *fakeSession) change(fn func(v *capture.View)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.v)
	s.v.Version++
	v := s.copyLocked()
	for ch := range s.subs {
		select {
		case ch <- v:
		default:
			select {
			case <-ch:
			default:
			}
			ch <- v
		}
	}
}

func (s *fakeSession) live() error {
	if s.View().State.Final() {
		return capture.ErrFinal
	}
	return nil
}

func (s *fakeSession) Reset(field capture.FieldName, actor string) error {
	if err := s.live(); err != nil {
		return err
	}
	for i, f := range s.View().Fields {
		if f.Name == field {
			s.change(func(v *capture.View) { v.Fields[i].Entered, v.Fields[i].Masked, v.Fields[i].Valid = 0, "", false })
			return nil
		}
	}
	return capture.ErrNotFound
}

func (s *fakeSession) Restart(actor string) error {
	if err := s.live(); err != nil {
		return err
	}
	s.change(func(v *capture.View) {
		for i := range v.Fields {
			v.Fields[i].Entered, v.Fields[i].Masked, v.Fields[i].Valid = 0, "", false
		}
	})
	return nil
}

// Faulted ends the session as capture does after a handler panic.
func (s *fakeSession) Faulted() {
	s.change(func(v *capture.View) {
		if !v.State.Final() {
			v.State, v.Reason = "failed", capture.ReasonAPIFault
		}
	})
}

func (s *fakeSession) Cancel(actor string) error {
	if err := s.live(); err != nil {
		return err
	}
	s.change(func(v *capture.View) { v.State, v.Reason = "cancelled", "cancelled" })
	return nil
}

func (s *fakeSession) Submit(ctx context.Context, actor string) (capture.View, error) {
	v := s.View()
	if v.State == "approved" || v.State == "failed" {
		return v, nil
	}
	if v.State != "complete" {
		return capture.View{}, capture.ErrNotReady
	}
	s.f.mu.Lock()
	err := s.f.submitErr
	s.f.mu.Unlock()
	switch err {
	case nil:
		s.change(func(v *capture.View) {
			v.State, v.Result = "approved", &capture.Result{Outcome: "approved", Token: "tok_1", AuthCode: "A1B2C3"}
		})
	case capture.ErrNotConfigured:
		s.change(func(v *capture.View) { v.State, v.Reason = "failed", "not_configured" })
		return capture.View{}, err
	default:
		return capture.View{}, err
	}
	return s.View(), nil
}

// complete pretends the customer typed every field.
func (s *fakeSession) complete() {
	s.change(func(v *capture.View) {
		v.State = "complete"
		for i := range v.Fields {
			v.Fields[i].Status, v.Fields[i].Valid, v.Fields[i].Entered = "valid", true, 4
		}
		v.Fields[0].Masked = "411111******1111"
	})
}

// fakeCalls is a static call registry.
type fakeCalls map[string]CallView

func (c fakeCalls) List(f CallFilter) []CallView {
	var out []CallView
	for _, cv := range c {
		if f.Caller != "" && cv.Caller != f.Caller || f.State != "" && cv.State != f.State {
			continue
		}
		ok := true
		for k, v := range f.Correlation {
			if cv.Correlation[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, cv)
		}
	}
	return out
}

func (c fakeCalls) Get(id string) (CallView, bool) { cv, ok := c[id]; return cv, ok }

func nowFixed() time.Time { return time.Unix(1_800_000_000, 0) }
