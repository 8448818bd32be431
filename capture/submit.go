package capture

import (
	"context"
	"errors"
	"fmt"

	"time"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/internal/secret"
)

// Submit tokenizes the card and authorizes the payment.
//
// It is idempotent: once a Submit has reached a final outcome, every later
// call returns the same view and error, and a Submit that finds another
// running waits for it and returns its outcome. It returns ErrNotReady
// before every field is valid, ErrFinal on a session that ended without
// a submit, ErrNotConfigured (and the session fails with reason
// not_configured) when the Manager has no Processor, and an error wrapping
// ErrUnavailable when the processor failed for now (an error wrapping
// ErrUnavailable, context.Canceled or context.DeadlineExceeded): the session
// stays complete or tokenized with its card data so the agent can submit
// again. Declined and failed payments are not errors: see View.Result.
func (s *Session) Submit(ctx context.Context, actor string) (v View, err error) {
	s.lock()
	for s.inflight != nil {
		done := s.inflight
		s.unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return s.View(), ctx.Err()
		}
		s.lock()
	}
	defer s.unlock()
	if s.submitted {
		return s.viewLocked(), s.submitErr
	}
	switch {
	case s.state.Final():
		return s.viewLocked(), ErrFinal
	case s.state != StateComplete && s.state != StateTokenized:
		return s.viewLocked(), ErrNotReady
	}
	now := s.m.now()
	if s.m.proc == nil {
		s.submitted, s.submitErr = true, ErrNotConfigured
		s.end(StateFailed, ReasonNotConfigured, actor,
			&Result{Outcome: OutcomeFailed, Reason: ReasonNotConfigured}, now)
		return s.viewLocked(), ErrNotConfigured
	}
	s.busy = true
	s.inflight = make(chan struct{})
	defer func() {
		close(s.inflight)
		s.inflight = nil
		s.busy = false
		if s.abortState != "" {
			s.end(s.abortState, s.abortReason, actorSystem, nil, s.m.now())
		}
		v = s.viewLocked()
	}()
	err = s.tokenize(ctx, actor)
	if err == nil && s.state == StateTokenized && s.abortState == "" {
		err = s.authorize(ctx, actor)
	}
	return v, err
}

// card lends the session's buffers to the processor.
func (s *Session) card() *Card {
	c := &Card{PAN: secret.Wrap(s.fields[0].buf), Expiry: secret.Wrap(s.fields[1].buf), CVV: secret.Wrap(s.fields[2].buf), Brand: s.fields[0].brand}
	if len(s.fields) > 3 {
		c.Extra = make(map[FieldName]secret.Secret, len(s.fields)-3)
		for _, f := range s.fields[3:] {
			c.Extra[f.name] = secret.Wrap(f.buf)
		}
	}
	return c
}

// temporary reports whether a processor error leaves the card data for
// another Submit.
func temporary(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// call runs fn with the session unlocked (the processor may be slow) and
// the card data lent; busy keeps every other path off the buffers.
func (s *Session) call(fn func()) {
	s.unlock()
	defer s.lock()
	fn()
}

func (s *Session) tokenize(ctx context.Context, actor string) error {
	if s.state == StateTokenized {
		return nil
	}
	s.audit(actor, audit.Record{Event: audit.EventTokenizationRequested, Outcome: audit.Info, MaskedPAN: s.fields[0].auditPAN})
	c := s.card()
	var tok string
	var err, aerr error
	s.call(func() {
		if aerr = s.m.sink.Sync(ctx); aerr == nil {
			tok, err = s.m.proc.Tokenize(ctx, c, s.req)
		}
	})
	if aerr != nil {
		return s.auditFailed(ctx, actor, aerr)
	}
	now := s.m.now()
	switch {
	case err != nil && temporary(err):
		s.m.log.Warn("capture: tokenization unavailable", zap.String("payment_id", s.id), zap.Error(err))
		s.audit(actor, audit.Record{Event: audit.EventTokenizationResult, Outcome: audit.Failure, Reason: audit.ReasonUnavailable})
		s.changed(now)
		return fmt.Errorf("capture: tokenization: %w", ErrUnavailable)
	case err != nil || tok == "":
		if err != nil {
			s.m.log.Error("capture: tokenization failed", zap.String("payment_id", s.id), zap.Error(err))
		}
		s.audit(actor, audit.Record{Event: audit.EventTokenizationResult, Outcome: audit.Failure, Reason: audit.ReasonTokenizationFailed})
		s.finish(StateFailed, &Result{Outcome: OutcomeFailed, Reason: ReasonTokenization}, actor, now)
		return nil
	}
	s.token = tok
	s.audit(actor, audit.Record{Event: audit.EventTokenizationResult, Outcome: audit.Success})
	s.setState(StateTokenized)
	s.changed(now)
	return nil
}

func (s *Session) authorize(ctx context.Context, actor string) error {
	s.setState(StateSubmitting)
	s.audit(actor, audit.Record{Event: audit.EventAuthorizationRequested, Outcome: audit.Info, MaskedPAN: s.fields[0].auditPAN})
	s.changed(s.m.now())
	c, tok := s.card(), s.token
	var res Result
	var err, aerr error
	s.call(func() {
		if aerr = s.m.sink.Sync(ctx); aerr == nil {
			res, err = s.m.proc.Authorize(ctx, c, tok, s.req)
		}
	})
	if aerr != nil {
		return s.auditFailed(ctx, actor, aerr)
	}
	now := s.m.now()
	if err != nil && temporary(err) {
		s.m.log.Warn("capture: authorization unavailable", zap.String("payment_id", s.id), zap.Error(err))
		s.audit(actor, audit.Record{Event: audit.EventAuthorizationResult, Outcome: audit.Failure, Reason: audit.ReasonUnavailable})
		if s.abortState != "" { // ended meanwhile: Submit's deferred end goes from submitting
			return fmt.Errorf("capture: authorization: %w", ErrUnavailable)
		}
		s.setState(StateTokenized)
		s.changed(now)
		return fmt.Errorf("capture: authorization: %w", ErrUnavailable)
	}
	if err != nil {
		s.m.log.Error("capture: authorization failed", zap.String("payment_id", s.id), zap.Error(err))
		res = Result{Outcome: OutcomeFailed, Reason: ReasonAuthorization}
	}
	to := map[string]State{OutcomeApproved: StateApproved, OutcomeDeclined: StateDeclined, OutcomeFailed: StateFailed}[res.Outcome]
	if to == "" {
		res = Result{Outcome: OutcomeFailed, Reason: ReasonInvalidResult}
		to = StateFailed
	}
	res.Token = tok
	out := audit.Failure
	if to == StateApproved {
		out = audit.Success
	}
	s.audit(actor, resultRecord(out, res))
	s.finish(to, &res, actor, now)
	return nil
}

// auditFailed stops a submit whose records could not be made durable
// before the card data would have gone to the processor: the session ends
// with audit_unavailable and its card data is wiped. A submit whose
// context ended meanwhile is left as it was, for another try.
func (s *Session) auditFailed(ctx context.Context, actor string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("capture: %w", ctx.Err())
	}
	s.m.log.Error("capture: audit trail unavailable; payment stopped", zap.String("payment_id", s.id), zap.Error(err))
	s.finish(StateFailed, &Result{Outcome: OutcomeFailed, Reason: ReasonAuditUnavailable}, actorSystem, s.m.now())
	s.submitErr = ErrAuditUnavailable
	return ErrAuditUnavailable
}

// finish ends a submitted session: its outcome is what every later Submit
// returns. A call end or expiry that came meanwhile is dropped: the
// outcome of a submitted payment is what happened.
func (s *Session) finish(to State, res *Result, actor string, now time.Time) {
	s.submitted = true
	s.abortState, s.abortReason = "", ""
	reason := res.Reason
	if reason == "" {
		reason = res.Outcome
	}
	s.end(to, reason, actor, res, now)
}

// resultRecord is the authorization.result record of r: its reason as a
// code (the outcome when it has none) and the acquirer's response code
// when it is one; nothing else the processor returned.
func resultRecord(out audit.Outcome, r Result) audit.Record {
	reason := r.Reason
	if reason == "" {
		reason = r.Outcome
	}
	rec := audit.Record{Event: audit.EventAuthorizationResult, Outcome: out, Reason: auditReason(reason)}
	if audit.ValidResponseCode(r.ResponseCode) {
		rec.ResponseCode = r.ResponseCode
	}
	return rec
}
