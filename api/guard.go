package api

import (
	"context"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/capture"
)

// guard is the last check before a View leaves the process: capture
// already masks, and this makes sure of it (defence in depth, DESIGN.md
// invariant 4). A field's masked value may show digits only for the card
// number, at most its first 6 and last 4 (PCI DSS 3.4.1) or its last 4
// with mask style "last4"; anything else is replaced by one "•" per digit
// entered. A free-text value holding a card number is replaced too.
type guard struct {
	last4 bool
	log   *zap.Logger
}

const redacted = "[redacted]"

func newGuard(cfg Config, log *zap.Logger) guard {
	if log == nil {
		log = zap.NewNop()
	}
	return guard{last4: cfg.MaskStyle == "last4", log: log.Named("api")}
}

func (g guard) view(v capture.View) capture.View {
	changed := false
	fields := v.Fields
	for i, f := range v.Fields {
		if g.maskedOK(f) {
			continue
		}
		if !changed {
			fields = append([]capture.FieldView(nil), v.Fields...)
			changed = true
		}
		fields[i].Masked = strings.Repeat("•", max(0, min(f.Entered, 32)))
		g.log.Error("masked value with too many digits replaced", zap.String("payment_id", v.ID), zap.String("field", string(f.Name)))
	}
	v.Fields = fields
	for _, s := range []*string{&v.MerchantRef, &v.Description, &v.Reason} {
		if containsCardNumber(*s) {
			*s = redacted
		}
	}
	if v.Result != nil {
		r := *v.Result
		for _, s := range []*string{&r.Token, &r.AuthCode, &r.Reason, &r.ResponseCode} {
			if containsCardNumber(*s) {
				*s = redacted
				g.log.Error("result value that looks like a card number replaced", zap.String("payment_id", v.ID))
			}
		}
		v.Result = &r
	}
	return v
}

func (g guard) maskedOK(f capture.FieldView) bool {
	digits := 0
	for _, c := range f.Masked {
		if c >= '0' && c <= '9' {
			digits++
		}
	}
	if digits == 0 {
		return true
	}
	if f.Name != capture.FieldCardNumber {
		return false
	}
	r := []rune(f.Masked)
	for i, c := range r {
		if c < '0' || c > '9' {
			continue
		}
		inBIN := i < 6 && !g.last4
		inLast4 := i >= len(r)-4
		if !inBIN && !inLast4 {
			return false
		}
	}
	return true
}

// guardedPayments applies the guard to everything a Payments returns.
type guardedPayments struct {
	p Payments
	g guard
}

func (gp guardedPayments) Start(callID string, req capture.PaymentRequest, actor string) (Session, error) {
	s, err := gp.p.Start(callID, req, actor)
	if err != nil {
		return nil, err
	}
	return guardedSession{s, gp.g}, nil
}

func (gp guardedPayments) Get(id string) (Session, bool) {
	s, ok := gp.p.Get(id)
	if !ok {
		return nil, false
	}
	return guardedSession{s, gp.g}, true
}

func (gp guardedPayments) Live(callID string) (Session, bool) {
	s, ok := gp.p.Live(callID)
	if !ok {
		return nil, false
	}
	return guardedSession{s, gp.g}, true
}

type guardedSession struct {
	Session
	g guard
}

func (gs guardedSession) View() capture.View { return gs.g.view(gs.Session.View()) }

func (gs guardedSession) Submit(ctx context.Context, actor string) (capture.View, error) {
	v, err := gs.Session.Submit(ctx, actor)
	return gs.g.view(v), err
}

func (gs guardedSession) Subscribe() (<-chan capture.View, func()) {
	in, cancel := gs.Session.Subscribe()
	out := make(chan capture.View, 1)
	done := make(chan struct{})
	go func() {
		defer close(out)
		for {
			select {
			case <-done:
				return
			case v, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- gs.g.view(v):
				case <-done:
					return
				}
			}
		}
	}()
	return out, sync.OnceFunc(func() { close(done); cancel() })
}
