package capture

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
)

func TestManagerRequiresAudit(t *testing.T) {
	if _, err := NewManager(Config{}, Options{TickInterval: -1}); err == nil {
		t.Fatal("NewManager without an audit trail succeeded")
	}
}

// endedFor returns the session.ended record of payment id, if any.
func endedFor(recs []audit.Record, id string) (audit.Record, bool) {
	for _, r := range recs {
		if r.PaymentID == id && r.Event == audit.EventSessionEnded {
			return r, true
		}
	}
	return audit.Record{}, false
}

// TestAuditDownEndsSessions: when the trail cannot be written, every live
// session ends with audit_unavailable and its card data is wiped, new
// ones are refused, and key presses change nothing; when it can again,
// payments work.
func TestAuditDownEndsSessions(t *testing.T) {
	e := newEnv(t, Config{}, &fakeProc{})
	typing := e.start("c-typing")
	e.keys("c-typing", visa[:8])
	done := e.start("c-complete")
	e.complete("c-complete")
	if v := done.View(); v.State != StateComplete || fieldView(t, typing.View(), FieldCardNumber).Entered != 8 {
		t.Fatalf("before: %s, typing %+v", v.State, fieldView(t, typing.View(), FieldCardNumber))
	}

	e.sink.down(t)
	for _, s := range []*Session{typing, done} {
		v := s.View()
		if v.State != StateFailed || v.Reason != ReasonAuditUnavailable {
			t.Errorf("%s: %s (%s), want failed audit_unavailable", s.CallID(), v.State, v.Reason)
		}
		assertWiped(t, s)
		r, ok := endedFor(e.sink.records(), s.ID())
		if !ok || r.Reason != audit.ReasonAuditUnavailable || r.State != string(StateFailed) {
			t.Errorf("%s: session.ended %+v, %v", s.CallID(), r, ok)
		}
		if e.m.Active(s.CallID()) {
			t.Errorf("%s still has a live session", s.CallID())
		}
	}
	if _, err := e.m.Start("c-new", testReq, "agent:alice"); !errors.Is(err, ErrAuditUnavailable) {
		t.Fatalf("Start with the trail down = %v, want ErrAuditUnavailable", err)
	}
	n := len(e.sink.records())
	e.keys("c-typing", "1111")
	if len(e.sink.records()) != n {
		t.Error("key presses after the session ended made records")
	}

	e.sink.up(t)
	s := e.start("c-new")
	e.complete("c-new")
	v, err := s.Submit(context.Background(), "agent:alice")
	if err != nil || v.State != StateApproved {
		t.Fatalf("after recovery: %s, %v", v.State, err)
	}
}

// TestAuditDownDuringSubmit: the trail stops while Submit waits for the
// tokenization request's record to be durable: the card never reaches
// the processor, the session ends with audit_unavailable, wiped.
func TestAuditDownDuringSubmit(t *testing.T) {
	proc := &fakeProc{}
	// A checkpoint after each record: the queue signs after each batch.
	sink := newRecSinkWith(t, 1, 0)
	e := newEnvSink(t, Config{}, proc, sink)
	s := e.start("c")
	e.complete("c")
	if err := sink.q.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	sink.signer.mu.Lock()
	sink.signer.fail, sink.signer.gate, sink.signer.entered = errors.New("vault sealed (test)"), gate, entered
	sink.signer.mu.Unlock()
	type result struct {
		v   View
		err error
	}
	res := make(chan result, 1)
	go func() {
		v, err := s.Submit(context.Background(), "agent:alice")
		res <- result{v, err}
	}()
	<-entered // tokenization.requested is written; its checkpoint is being signed
	if tok, _ := proc.calls(); tok != 0 {
		t.Fatal("the processor was called before the record was durable")
	}
	close(gate)
	r := <-res
	if !errors.Is(r.err, ErrAuditUnavailable) || r.v.State != StateFailed || r.v.Reason != ReasonAuditUnavailable ||
		r.v.Result == nil || r.v.Result.Reason != ReasonAuditUnavailable {
		t.Fatalf("Submit = %s (%s) %+v, %v; want failed audit_unavailable", r.v.State, r.v.Reason, r.v.Result, r.err)
	}
	if tok, auth := proc.calls(); tok != 0 || auth != 0 {
		t.Errorf("processor called %d+%d times, want never", tok, auth)
	}
	assertWiped(t, s)
	if _, err := s.Submit(context.Background(), "agent:alice"); !errors.Is(err, ErrAuditUnavailable) {
		t.Errorf("second Submit = %v, want the same ErrAuditUnavailable", err)
	}
	for _, tr := range e.transitions() {
		if !CanTransition(tr.from, tr.to) {
			t.Errorf("illegal %s → %s tried", tr.from, tr.to)
		}
	}
}

// TestDigitNeverWaitsForTheTrail: the relay's thread hands key presses to
// capture and must not block. The trail's signer is held (as Vault would
// hold it), so the queue's goroutine is stuck in a checkpoint; the
// customer types a whole card meanwhile: every Digit returns, the session
// is complete, and the records wait in the queue, to be written in order
// once the signer answers.
func TestDigitNeverWaitsForTheTrail(t *testing.T) {
	sink := newRecSinkWith(t, 1, 0)
	e := newEnvSink(t, Config{}, &fakeProc{}, sink)
	s := e.start("c")
	if err := sink.q.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	sink.signer.mu.Lock()
	sink.signer.gate, sink.signer.entered = gate, entered
	sink.signer.mu.Unlock()
	released := false
	defer func() {
		if !released {
			close(gate)
		}
	}()

	typed := make(chan struct{})
	go func() {
		defer close(typed)
		e.keys("c", visa+"#")
		<-entered // the card number's record is being checkpointed: the queue is stuck
		e.keys("c", expiry+cvv)
	}()
	select {
	case <-typed:
	case <-time.After(30 * time.Second):
		t.Fatal("Digit blocked while the audit trail's signer was held")
	}
	// The signer is still held: nothing after the first record is written.
	if v := s.View(); v.State != StateComplete {
		t.Fatalf("state %s after the whole card, want complete", v.State)
	}
	if d := sink.q.Depth(); d != 3 { // card number (in the stuck batch), expiry, security code
		t.Errorf("queue depth %d, want the 3 field.completed records", d)
	}
	sink.signer.mu.Lock()
	sink.signer.gate, sink.signer.entered = nil, nil
	sink.signer.mu.Unlock()
	close(gate)
	released = true
	if err := sink.q.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, r := range sink.records() {
		if r.Event == audit.EventFieldCompleted {
			fields = append(fields, r.Field)
		}
	}
	if !slices.Equal(fields, []string{"card_number", "expiry", "security_code"}) {
		t.Errorf("field.completed records %v, want in typing order", fields)
	}
}

// TestQueueFullEndsSession: a record of a payment that the trail's queue
// cannot take (full, its writer held) ends that payment: it would
// otherwise go on unaudited.
func TestQueueFullEndsSession(t *testing.T) {
	sink := newRecSinkWith(t, 1, 16)
	e := newEnvSink(t, Config{}, &fakeProc{}, sink)
	s := e.start("c")
	if err := sink.q.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	sink.signer.mu.Lock()
	sink.signer.gate, sink.signer.entered = gate, entered
	sink.signer.mu.Unlock()
	defer close(gate)
	e.keys("c", visa+"#")
	<-entered
	for i := 0; sink.q.Err() == nil; i++ {
		if i > 16 {
			t.Fatal("the queue does not fill")
		}
		sink.q.Append(context.Background(), audit.Record{Actor: "test", Event: audit.EventConfigLoaded, Outcome: audit.Success, Reason: audit.ReasonConfigDefault})
	}
	e.keys("c", expiry) // its field.completed finds the queue full
	v := s.View()
	if v.State != StateFailed || v.Reason != ReasonAuditUnavailable {
		t.Fatalf("session %s (%s), want failed audit_unavailable", v.State, v.Reason)
	}
	assertWiped(t, s)
	if e.m.AuditErrors() == 0 {
		t.Error("AuditErrors = 0")
	}
	e.keys("c", cvv)
	if v := s.View(); v.State != StateFailed {
		t.Errorf("state %s after more keys", v.State)
	}
}
