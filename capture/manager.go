package capture

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/dtmf"
)

// Options are the Manager's collaborators.
type Options struct {
	Processor Processor        // nil: Submit fails sessions with not_configured
	Audit     AuditSink        // required: the audit trail (an *audit.Queue)
	Now       func() time.Time // the clock; default time.Now
	Logger    *zap.Logger      // operational log; default none. Never given card data.
	// TickInterval is how often the Manager's goroutine runs the timers
	// (Tick); default 1s. Negative: no goroutine, the caller calls Tick
	// (tests, with their own clock).
	TickInterval time.Duration
	// Retain is how long an ended session can still be found by Get;
	// default 1h.
	Retain time.Duration
	// OnActive, when set, is told when a call's capture starts (before
	// Start returns, so before any digit can count) and when it ends. The
	// media relay's capture-only policy masks digits in between. It is
	// called with the session locked: it must not block or call back into
	// the Manager.
	OnActive func(callID string, active bool)
	// Journal, when set, keeps the sessions in the store (see Journal).
	Journal *Journal
}

// Manager owns the payment sessions of every call.
//
// Locking: mu is never taken while a session's lock is held (sessions
// detach from their call after releasing theirs).
type Manager struct {
	cfg    Config
	proc   Processor
	sink   AuditSink
	now    func() time.Time
	log    *zap.Logger
	retain time.Duration
	active func(callID string, active bool)

	journal *Journal // nil: sessions live in memory only

	mu     sync.RWMutex
	byID   map[string]*Session
	byCall map[string]*Session // the call's latest session
	closed bool
	live   int        // sessions started and not yet ended
	ended  []*Session // in the order they ended: the first to forget when full

	stop        chan struct{}
	done        chan struct{}
	unwatch     func()
	auditErrors atomic.Uint64
	faults      atomic.Uint64

	transitionHook func(from, to State) // tests: sees every transition attempted
}

// NewManager checks cfg (zero values take the defaults) and starts the
// timer goroutine unless opts.TickInterval is negative. opts.Audit is
// required.
func NewManager(cfg Config, opts Options) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Audit == nil {
		return nil, errors.New("capture: Options.Audit is required: no capture without an audit trail")
	}
	m := &Manager{
		cfg: cfg, proc: opts.Processor, sink: opts.Audit, now: opts.Now, log: opts.Logger,
		retain: opts.Retain, active: opts.OnActive, journal: opts.Journal,
		byID: make(map[string]*Session), byCall: make(map[string]*Session),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = zap.NewNop()
	}
	if m.retain <= 0 {
		m.retain = time.Hour
	}
	m.unwatch = m.sink.Watch(m.auditChanged)
	every := opts.TickInterval
	if every == 0 {
		every = time.Second
	}
	if every < 0 {
		close(m.done)
		return m, nil
	}
	go m.run(every)
	return m, nil
}

func (m *Manager) run(every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.Tick(m.now())
		}
	}
}

// Config is the configuration in use, defaults filled in.
func (m *Manager) Config() Config { return m.cfg }

// Start opens a payment session on a call. Only digits pressed after this
// moment go into it. ErrCallBusy if the call has a live session,
// ErrAuditUnavailable while the audit trail cannot be written.
func (m *Manager) Start(callID string, req PaymentRequest, actor string) (*Session, error) {
	if err := checkRequest(callID, req); err != nil {
		return nil, err
	}
	if err := m.sink.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAuditUnavailable, err)
	}
	if actor == "" {
		actor = actorSystem
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	if old := m.byCall[callID]; old != nil && old.live() {
		m.mu.Unlock()
		return nil, ErrCallBusy
	}
	if m.live >= m.cfg.MaxLiveSessions {
		m.mu.Unlock()
		return nil, ErrCapacity
	}
	for len(m.byID) >= m.cfg.MaxRetainedSessions && len(m.ended) > 0 {
		m.forgetOldest()
	}
	m.live++
	s := m.newSession(id, callID, req)
	// Locked before it is visible: nothing reaches it before it has
	// begun, and its session.started record goes first.
	s.lock()
	m.byID[id] = s
	m.byCall[callID] = s
	m.mu.Unlock()
	if m.active != nil {
		m.active(callID, true)
	}
	s.begin(actor, s.createdAt)
	s.unlock()
	return s, nil
}

func (m *Manager) newSession(id, callID string, req PaymentRequest) *Session {
	now := m.now()
	s := &Session{m: m, id: id, callID: callID, req: req, state: StateCreated,
		createdAt: now, updatedAt: now, acceptFrom: now}
	if m.cfg.SessionTimeout > 0 {
		s.expiresAt = now.Add(m.cfg.SessionTimeout)
	}
	s.chk = check{cfg: &m.cfg, merchant: req.Merchant}
	s.fields = []*field{
		newField(FieldCardNumber, "Card number", kindPAN, minPANLen, maxPANLen),
		newField(FieldExpiry, "Expiry (MMYY)", kindExpiry, 4, 4),
		newField(FieldSecurityCode, "Security code", kindCVV, 3, 4),
	}
	for _, e := range m.cfg.ExtraFields {
		s.fields = append(s.fields, newField(e.Name, e.Label, kindExtra, e.MinDigits, e.MaxDigits))
	}
	return s
}

func checkRequest(callID string, req PaymentRequest) error {
	switch {
	case !audit.ValidID(callID):
		// Every record of the session names the call: one the trail would
		// refuse would leave the payment unaudited.
		return fmt.Errorf("%w: call id is not an id the audit trail takes (audit.ValidID)", ErrInvalidRequest)
	case req.Amount <= 0:
		return fmt.Errorf("%w: amount must be positive (minor units)", ErrInvalidRequest)
	case !isCurrency(req.Currency):
		return fmt.Errorf("%w: currency must be 3 upper-case letters (ISO 4217)", ErrInvalidRequest)
	}
	return nil
}

func isCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

// idEncoding is base32 (RFC 4648) in lowercase, without padding.
var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID is "pay_" and 120 random bits in lowercase base32 (24
// characters).
//
// An id is an audit.ValidID, which never holds 12 digits in a row; base32
// spells one with 12 of its digits 2-7 in a row about twice in 10^8 ids
// (2e-8), and that draw is made again. So the operational log's redactor,
// which masks runs of 12 to 19 digits that pass the Luhn check, never
// masks a payment id logged as a field (without the redraw it would,
// about twice in 10^9 ids).
func newID() (string, error) {
	for {
		var b [15]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("capture: session id: %w", err)
		}
		if id := "pay_" + strings.ToLower(idEncoding.EncodeToString(b[:])); audit.ValidID(id) {
			return id, nil
		}
	}
}

func (s *Session) live() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.Live()
}

// Get finds a session by id, live or ended (ended ones for Options.Retain).
func (m *Manager) Get(id string) (*Session, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.byID[id]
	return s, ok
}

// Session is the call's live session, if any.
func (m *Manager) Session(callID string) (*Session, bool) {
	m.mu.RLock()
	s := m.byCall[callID]
	m.mu.RUnlock()
	if s == nil || !s.live() {
		return nil, false
	}
	return s, true
}

// Digit hands a key press on a call to its live session. It is ignored
// when the call has none, or when the press (at) is not after the session
// started (or was last restarted or reset).
func (m *Manager) Digit(callID string, d dtmf.Digit, at time.Time) {
	m.mu.RLock()
	s := m.byCall[callID]
	m.mu.RUnlock()
	if s != nil {
		m.safely(s, "digit", func() { s.digit(d, at) })
	}
}

// CallEnded cancels the call's live session (reason call_ended) and wipes
// its card data. If the processor is running, that happens when it
// returns, unless the payment reached an outcome.
func (m *Manager) CallEnded(callID string) {
	m.mu.RLock()
	s := m.byCall[callID]
	m.mu.RUnlock()
	if s != nil {
		m.safely(s, "call_ended", func() {
			s.lock()
			defer s.unlock()
			s.abort(StateCancelled, ReasonCallEnded, m.now())
		})
	}
}

// CallTransferred cancels the call's live session (reason transferred)
// and wipes its card data, as CallEnded does: the agent who started it
// has handed the call to another (sip.transfer.capture: cancel).
func (m *Manager) CallTransferred(callID string) {
	m.mu.RLock()
	s := m.byCall[callID]
	m.mu.RUnlock()
	if s != nil {
		m.safely(s, "call_transferred", func() {
			s.lock()
			defer s.unlock()
			s.abort(StateCancelled, ReasonTransferred, m.now())
		})
	}
}

// Active reports whether the call has a live payment session (the relay
// masks digits while it does).
func (m *Manager) Active(callID string) bool {
	_, ok := m.Session(callID)
	return ok
}

// detach forgets an ended session's call. A session ends once.
func (m *Manager) detach(s *Session) {
	m.mu.Lock()
	if m.byCall[s.callID] == s {
		delete(m.byCall, s.callID)
	}
	m.live--
	m.ended = append(m.ended, s)
	m.mu.Unlock()
}

// forgetOldest forgets the session that ended first (unless Tick did
// already). m.mu is held.
func (m *Manager) forgetOldest() {
	s := m.ended[0]
	m.ended[0] = nil
	m.ended = m.ended[1:]
	if m.byID[s.id] == s {
		delete(m.byID, s.id)
	}
}

func (m *Manager) sessions() []*Session {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Session, 0, len(m.byID))
	for _, s := range m.byID {
		out = append(out, s)
	}
	return out
}

// Tick runs every session's timers at now (inter-digit, field and session
// timeouts) and forgets sessions that ended more than Options.Retain ago.
// The Manager's goroutine calls it every TickInterval.
func (m *Manager) Tick(now time.Time) {
	var old []*Session
	for _, s := range m.sessions() {
		m.safely(s, "tick", func() { s.tick(now) })
		s.mu.Lock()
		if s.state.Final() && now.Sub(s.updatedAt) > m.retain {
			old = append(old, s)
		}
		s.mu.Unlock()
	}
	if len(old) == 0 {
		return
	}
	m.mu.Lock()
	for _, s := range old {
		delete(m.byID, s.id)
		if m.byCall[s.callID] == s {
			delete(m.byCall, s.callID)
		}
	}
	// Those forgotten sessions are at the front of the ended queue.
	for len(m.ended) > 0 && m.byID[m.ended[0].id] != m.ended[0] {
		m.ended[0] = nil
		m.ended = m.ended[1:]
	}
	m.mu.Unlock()
}

// AuditErrors counts audit records the sink refused or could not take.
func (m *Manager) AuditErrors() uint64 { return m.auditErrors.Load() }

// appendAudit queues recs; Append never blocks. It reports whether a
// record was lost because the trail could not take it (as opposed to a
// record it refused, which is a bug, logged and counted).
func (m *Manager) appendAudit(recs []audit.Record) (lost bool) {
	for _, r := range recs {
		if _, err := m.sink.Append(context.Background(), r); err != nil {
			m.auditErrors.Add(1)
			m.log.Error("capture: audit record not written",
				zap.String("event", string(r.Event)), zap.String("payment_id", r.PaymentID), zap.Error(err))
			lost = lost || errors.Is(err, audit.ErrQueueFull) || errors.Is(err, audit.ErrUnavailable) || errors.Is(err, audit.ErrClosed)
		}
	}
	return lost
}

// auditChanged hears from the trail: when it cannot be written, every
// live session ends with audit_unavailable and its card data is wiped (a
// session whose processor runs ends when it returns, unless the payment
// reached an outcome). New sessions are refused until it can (Start).
func (m *Manager) auditChanged(err error) {
	if err == nil {
		m.log.Info("capture: audit trail writable again; payments accepted")
		return
	}
	m.log.Error("capture: audit trail cannot be written; live payments end, new ones are refused", zap.Error(err))
	now := m.now()
	for _, s := range m.sessions() {
		m.safely(s, "audit_unavailable", func() {
			s.lock()
			defer s.unlock()
			s.abort(StateFailed, ReasonAuditUnavailable, now)
		})
	}
}

// Close stops the timers and cancels every live session (reason
// shutdown), wiping its card data. Start fails with ErrClosed afterwards.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	m.mu.Unlock()
	m.unwatch()
	select {
	case <-m.done:
	default:
		close(m.stop)
		<-m.done
	}
	now := m.now()
	for _, s := range m.sessions() {
		m.safely(s, "shutdown", func() {
			s.lock()
			defer s.unlock()
			s.abort(StateCancelled, ReasonShutdown, now)
		})
	}
}
