package capture

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/dtmf"
)

// Actors of the records the session writes by itself.
const (
	actorCustomer = "customer" // key presses on the call
	actorSystem   = "system"   // timers, call end, shutdown
)

// Session is one payment on one call. Its methods are safe for concurrent
// use.
//
// Locking: mu guards everything below it. Audit records are gathered under
// mu and queued before it is released (the sink's Append never blocks), so
// that a session's records reach the trail in the order they happened.
// Snapshots for the store are written after mu is released (a database
// write may wait), under saveMu, which is taken before mu is released so
// that they reach the store in order too. A Manager's lock is never taken
// while mu is held.
type Session struct {
	m      *Manager
	id     string
	callID string
	req    PaymentRequest

	saveMu sync.Mutex
	mu     sync.Mutex

	state      State
	reason     string
	fields     []*field
	cur        int // the current field while collecting
	chk        check
	ignored    int
	createdAt  time.Time
	updatedAt  time.Time
	expiresAt  time.Time
	acceptFrom time.Time // digits pressed before this belong to no entry
	fieldStart time.Time // when the current attempt at the current field began
	lastDigit  time.Time // the current field's last digit, or the last one swallowed; zero when empty
	version    uint64
	token      string
	result     *Result

	// swallow: digits still to drop as the rest of an entry refused before
	// it was complete. A customer who typed month 13 goes on typing the
	// year; were those digits a new attempt, one mistake would cost two.
	// '#', '*', a pause of the inter-digit timeout, or the entry's largest
	// length ends it.
	swallow int

	// busy: the Processor holds the card data; nothing may touch the
	// buffers. A call end or expiry meanwhile is applied when it returns.
	busy        bool
	abortState  State
	abortReason string
	inflight    chan struct{} // closed when the running Submit returns
	submitted   bool          // a Submit reached a final outcome
	submitErr   error

	subs    map[int]chan View
	nextSub int

	pending []audit.Record
	ended   bool // became final in this critical section: detach from the call

	saved  saveMark // what the Journal was last given (persist.go)
	toSave *View    // for unlock to give the Journal
}

// ID is the session's id: "pay_" and 24 characters of lowercase base32.
func (s *Session) ID() string { return s.id }

// CallID is the call the session belongs to.
func (s *Session) CallID() string { return s.callID }

// lock and unlock wrap every mutation: unlock queues the gathered audit
// records in order and detaches a session that ended from its call. A
// session one of whose records the trail could not take stops there: a
// payment is audited whole or not at all.
func (s *Session) lock() { s.mu.Lock() }

func (s *Session) unlock() {
	recs := s.pending
	s.pending = nil
	if s.m.appendAudit(recs) && s.state.Live() {
		s.abort(StateFailed, ReasonAuditUnavailable, s.m.now())
		recs, s.pending = s.pending, nil
		s.m.appendAudit(recs)
	}
	ended := s.ended
	s.ended = false
	save := s.toSave
	s.toSave = nil
	s.saveMu.Lock()
	s.mu.Unlock()
	if save != nil {
		s.m.journal.save(*save)
	}
	s.saveMu.Unlock()
	if ended {
		s.m.detach(s)
	}
}

// audit gathers r with the session's actor and ids filled in.
func (s *Session) audit(actor string, r audit.Record) {
	if actor == "" {
		actor = actorSystem
	}
	r.Actor, r.CallID, r.PaymentID = actor, s.callID, s.id
	s.pending = append(s.pending, r)
}

// auditReason is the audit code for a reason the session holds: its own
// codes and the processor's are audit codes already; a declined result
// the list does not name ("declined_<code>", whose response code the
// record carries) is declined, anything else unlisted.
func auditReason(reason string) audit.Reason {
	r := audit.Reason(reason)
	switch {
	case r.Known():
		return r
	case strings.HasPrefix(reason, OutcomeDeclined+"_"):
		return audit.ReasonDeclined
	}
	return audit.ReasonUnlisted
}

// setState moves the state machine; an illegal move is a bug, refused and
// logged.
func (s *Session) setState(to State) bool {
	from := s.state
	if h := s.m.transitionHook; h != nil {
		h(from, to)
	}
	if !CanTransition(from, to) {
		s.m.log.Error("capture: illegal state transition refused",
			zap.String("payment_id", s.id), zap.String("from", string(from)), zap.String("to", string(to)))
		return false
	}
	s.state = to
	return true
}

// changed records a change: new version, and a snapshot to subscribers
// (latest wins: a subscriber that has not read the previous one gets only
// this one). A final snapshot closes the subscriptions.
func (s *Session) changed(now time.Time) {
	s.version++
	s.updatedAt = now
	s.markSave()
	if len(s.subs) == 0 {
		return
	}
	v := s.viewLocked()
	for id, ch := range s.subs {
		offer(ch, v)
		if s.state.Final() {
			close(ch)
			delete(s.subs, id)
		}
	}
}

// offer puts v in ch (capacity 1), replacing an unread older view. Only
// the session sends, under its lock, so the second send cannot block.
func offer(ch chan View, v View) {
	select {
	case ch <- v:
		return
	default:
	}
	select {
	case <-ch:
	default:
	}
	select {
	case ch <- v:
	default:
	}
}

// View is a snapshot of the session. It never holds card data.
func (s *Session) View() View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.viewLocked()
}

func (s *Session) viewLocked() View {
	v := View{
		ID: s.id, CallID: s.callID, State: s.state, Reason: s.reason,
		Amount: s.req.Amount, Currency: s.req.Currency, MerchantRef: s.req.MerchantRef,
		Description: s.req.Description, Merchant: s.req.Merchant,
		IgnoredDigits: s.ignored, CreatedAt: s.createdAt, UpdatedAt: s.updatedAt,
		ExpiresAt: s.expiresAt, Version: s.version,
		Fields: make([]FieldView, len(s.fields)),
	}
	if s.state == StateCollecting {
		v.CurrentField = s.fields[s.cur].name
	}
	for i, f := range s.fields {
		v.Fields[i] = f.view(s.m.cfg.MaxAttempts)
	}
	if s.result != nil {
		r := *s.result
		v.Result = &r
	}
	return v
}

// Subscribe returns a channel that receives the current view at once and
// then a view after every change, latest wins. The channel is closed after
// the final view, or by cancel.
func (s *Session) Subscribe() (<-chan View, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan View, 1)
	ch <- s.viewLocked()
	if s.state.Final() {
		close(ch)
		return ch, func() {}
	}
	if s.subs == nil {
		s.subs = make(map[int]chan View)
	}
	id := s.nextSub
	s.nextSub++
	s.subs[id] = ch
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if c, ok := s.subs[id]; ok {
			delete(s.subs, id)
			close(c)
		}
	}
}

// begin starts collecting the first field.
func (s *Session) begin(actor string, now time.Time) {
	s.audit(actor, audit.Record{Event: audit.EventSessionStarted, Outcome: audit.Success})
	s.changed(now)
	s.setState(StateCollecting)
	s.enterField(0, now)
	s.changed(now)
}

func (s *Session) enterField(i int, now time.Time) {
	s.cur = i
	s.fields[i].status = FieldCollecting
	s.fieldStart = now
	s.lastDigit = time.Time{}
	s.swallow = 0
}

// digit handles one key press from the call.
func (s *Session) digit(d dtmf.Digit, at time.Time) {
	s.lock()
	defer s.unlock()
	if s.state != StateCollecting || s.busy || !at.After(s.acceptFrom) {
		return
	}
	runTestFault("digit", s.id)
	now := s.m.now()
	f := s.fields[s.cur]
	if s.swallow > 0 {
		switch {
		case d >= '0' && d <= '9':
			s.swallow--
			s.lastDigit = now
			return
		case d == '#' || d == '*':
			s.swallow = 0
			s.lastDigit = time.Time{}
			return
		}
	}
	switch {
	case d >= 'A' && d <= 'D':
		s.ignored++
		s.changed(now)
	case d == '*':
		if len(f.buf) == 0 {
			return
		}
		s.clearField(f, actorCustomer, now)
		s.fieldStart = now
		s.changed(now)
	case d == '#':
		if len(f.buf) == 0 { // a reflex '#' after a field that ended by itself
			return
		}
		s.apply(f, f.end(s.check(now)), "", now)
	case d >= '0' && d <= '9':
		if f.status == FieldInvalid {
			f.status, f.err = FieldCollecting, ""
		}
		s.lastDigit = now
		s.apply(f, f.add(byte(d), s.check(now)), "", now)
	}
}

func (s *Session) check(now time.Time) *check {
	s.chk.now = now
	s.chk.cardBrand = s.fields[0].brand
	return &s.chk
}

// apply acts on a field's verdict. override replaces the reason of a
// refusal (a timeout).
func (s *Session) apply(f *field, v verdict, override string, now time.Time) {
	if !v.done {
		s.changed(now)
		return
	}
	if v.reason != "" {
		if override != "" {
			v.reason = override
		}
		s.refuse(f, v.reason, actorCustomer, now)
		if v.rest > 0 && s.state == StateCollecting {
			s.swallow = v.rest
			s.lastDigit = now
		}
		return
	}
	f.status, f.err = FieldValid, ""
	s.audit(actorCustomer, audit.Record{Event: audit.EventFieldCompleted, Outcome: audit.Success, Field: string(f.name), MaskedPAN: f.auditPAN})
	s.next(now)
	s.changed(now)
}

// next moves to the first field that is not valid, or to complete.
func (s *Session) next(now time.Time) {
	for i, f := range s.fields {
		if f.status != FieldValid {
			s.setState(StateCollecting)
			s.enterField(i, now)
			return
		}
	}
	s.setState(StateComplete)
	s.lastDigit = time.Time{}
}

// refuse counts a failed attempt at f; the session fails when the
// attempts are exhausted.
func (s *Session) refuse(f *field, reason, actor string, now time.Time) {
	s.wipe(f, actor, audit.ReasonFieldRefused)
	f.attempts++
	f.err = reason
	s.audit(actor, audit.Record{Event: audit.EventFieldFailed, Outcome: audit.Failure, Field: string(f.name), Reason: auditReason(reason)})
	if f.attempts >= s.m.cfg.MaxAttempts {
		f.status = FieldFailed
		s.end(StateFailed, ReasonAttemptsExhausted, actorSystem, nil, now)
		return
	}
	f.status = FieldInvalid
	s.fieldStart = now
	s.lastDigit = time.Time{}
	s.changed(now)
}

// clearField empties f for a new entry; no attempt is counted.
func (s *Session) clearField(f *field, actor string, now time.Time) {
	s.wipe(f, actor, audit.ReasonFieldReset)
	f.err = ""
	f.status = FieldPending
	if s.state == StateCollecting && s.fields[s.cur] == f {
		f.status = FieldCollecting
	}
	s.lastDigit = time.Time{}
	s.audit(actor, audit.Record{Event: audit.EventFieldReset, Outcome: audit.Info, Field: string(f.name)})
}

// wipe wipes f and, if it held data, records it: one record per field, so
// that the wipe of the security code (PCI DSS 3.3.1) is a record of its own.
func (s *Session) wipe(f *field, actor string, why audit.Reason) {
	if f.wipe() {
		s.audit(actor, audit.Record{Event: audit.EventCardDataWiped, Outcome: audit.Success, Field: string(f.name), Reason: why})
	}
}

// wipeAll wipes every field and records those that held data.
func (s *Session) wipeAll(actor string, why audit.Reason) {
	for _, f := range s.fields {
		s.wipe(f, actor, why)
	}
}

// end moves to a final state, wipes all card data and ends the
// subscriptions.
func (s *Session) end(to State, reason, actor string, res *Result, now time.Time) {
	if !s.setState(to) {
		return
	}
	s.reason = reason
	s.result = res
	s.busy = false
	// The masked card number (first 6 and last 4 at most, which PCI DSS
	// 3.4.1 lets be shown) outlives the digits: the agent reads it back
	// to the customer with the outcome.
	pan := s.fields[0]
	masked, brand := pan.masked, pan.brand
	s.wipeAll(actor, audit.ReasonSessionEnded)
	if pan.status == FieldValid {
		pan.masked, pan.brand = masked, brand
	}
	out := audit.Failure
	switch to {
	case StateApproved:
		out = audit.Success
	case StateCancelled:
		out = audit.Info
	}
	s.audit(actor, audit.Record{Event: audit.EventSessionEnded, Outcome: out, State: string(to), Reason: auditReason(reason)})
	s.ended = true
	if s.m.active != nil {
		s.m.active(s.callID, false)
	}
	s.changed(now)
}

// Reset clears field f so the customer types it again; it does not count
// as an attempt. Resetting the card number resets the security code too,
// since its length depends on the brand. Digits pressed before the reset
// are ignored.
func (s *Session) Reset(name FieldName, actor string) error {
	s.lock()
	defer s.unlock()
	if err := s.agentAction(); err != nil {
		return err
	}
	var f *field
	for _, g := range s.fields {
		if g.name == name {
			f = g
		}
	}
	if f == nil {
		return fmt.Errorf("capture: reset: no such field: %w", ErrNotFound)
	}
	now := s.m.now()
	s.acceptFrom = now
	s.token = ""
	reset := []*field{f}
	if f.kind == kindPAN {
		reset = append(reset, s.fields[2])
	}
	for _, g := range reset {
		g.status = FieldPending
		s.clearField(g, actor, now)
	}
	// A field being typed loses its partial entry: collecting moves back
	// to the reset field.
	for _, g := range s.fields {
		if g.status == FieldCollecting || g.status == FieldInvalid {
			s.wipe(g, actor, audit.ReasonFieldReset)
			g.status = FieldPending
		}
	}
	s.next(now)
	s.changed(now)
	return nil
}

// Restart empties every field and gives every field its attempts back;
// digits pressed before the restart are ignored. The session timeout still
// runs from the start.
func (s *Session) Restart(actor string) error {
	s.lock()
	defer s.unlock()
	if err := s.agentAction(); err != nil {
		return err
	}
	now := s.m.now()
	s.acceptFrom = now
	s.token = ""
	s.wipeAll(actor, audit.ReasonSessionRestarted)
	for _, f := range s.fields {
		f.status, f.err, f.attempts = FieldPending, "", 0
	}
	s.audit(actor, audit.Record{Event: audit.EventSessionRestarted, Outcome: audit.Info})
	s.next(now)
	s.changed(now)
	return nil
}

// Cancel ends the session (cancelled) and wipes its card data. It is
// refused with ErrInFlight while the processor runs: the outcome of an
// authorization already sent must be recorded.
func (s *Session) Cancel(actor string) error {
	s.lock()
	defer s.unlock()
	if err := s.agentAction(); err != nil {
		return err
	}
	s.end(StateCancelled, ReasonCancelled, actor, nil, s.m.now())
	return nil
}

func (s *Session) agentAction() error {
	switch {
	case !s.state.Live():
		return ErrFinal
	case s.busy:
		return ErrInFlight
	}
	return nil
}

// abort ends a live session for a reason outside the agent's control
// (call ended, expiry, shutdown). While the processor runs it is applied
// when the processor returns.
func (s *Session) abort(to State, reason string, now time.Time) {
	if !s.state.Live() {
		return
	}
	if s.busy {
		if s.abortState == "" {
			s.abortState, s.abortReason = to, reason
		}
		return
	}
	s.end(to, reason, actorSystem, nil, now)
}

// tick runs the timers at now.
func (s *Session) tick(now time.Time) {
	s.lock()
	defer s.unlock()
	if !s.state.Live() {
		return
	}
	runTestFault("tick", s.id)
	if !s.expiresAt.IsZero() && !now.Before(s.expiresAt) {
		s.abort(StateExpired, ReasonSessionTimeout, now)
		return
	}
	if s.state != StateCollecting || s.busy {
		return
	}
	cfg := &s.m.cfg
	f := s.fields[s.cur]
	if s.swallow > 0 && cfg.InterDigitTimeout > 0 && !now.Before(s.lastDigit.Add(cfg.InterDigitTimeout)) {
		// The customer paused: what comes next is a new attempt.
		s.swallow = 0
		s.lastDigit = time.Time{}
	}
	switch {
	case cfg.InterDigitTimeout > 0 && len(f.buf) > 0 && !now.Before(s.lastDigit.Add(cfg.InterDigitTimeout)):
		// The customer stopped typing: that ends the field like '#'
		// (a 16-digit Visa needs no '#'), refused as a timeout if the
		// digits are not a valid entry.
		s.apply(f, f.end(s.check(now)), ReasonTimeout, now)
	case cfg.FieldTimeout > 0 && !now.Before(s.fieldStart.Add(cfg.FieldTimeout)):
		s.refuse(f, ReasonTimeout, actorSystem, now)
	}
}
