package capture

import (
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/internal/panics"
)

// Faults (DESIGN.md invariant 8). The Manager's callbacks run on other
// packages' goroutines: a key press on the relay's thread (Digit), the
// timers on the Manager's own (Tick), the call's end and transfer on
// SIP's, the trail's state on the audit queue's. A panic in one of them
// ends the payment session it was handling and nothing else: the
// session fails with reason capture_fault and its card data is wiped
// (when the processor holds it, once the processor returns), and the
// caller goes on. An API request that panics on a session ends it the
// same way, with reason api_fault (Session.Faulted).

// Reasons of a session that a fault ended (View.Reason, and its
// session.ended record).
const (
	ReasonCaptureFault = string(audit.ReasonCaptureFault)
	ReasonAPIFault     = string(audit.ReasonAPIFault)
)

// testFault, when set, is called with the session locked where a key
// press is taken (where "digit") and where its timers run ("tick"): a
// panic in it is one in the session's handling. Only tests set it;
// nothing reaches it from configuration or the network.
var testFault atomic.Pointer[func(where, paymentID string)]

func runTestFault(where, paymentID string) {
	if h := testFault.Load(); h != nil {
		(*h)(where, paymentID)
	}
}

// safely runs fn, the Manager's handling of s; a panic in it ends s
// (capture_fault) and goes no further.
func (m *Manager) safely(s *Session, where string, fn func()) {
	defer func() {
		if v := recover(); v != nil {
			m.faults.Add(1)
			m.log.Error("capture: panic handling a payment session; it fails and its card data is wiped",
				append([]zap.Field{zap.String("payment_id", s.id), zap.String("call_id", s.callID), zap.String("where", where)}, panics.Fields(v)...)...)
			m.endFaulted(s, ReasonCaptureFault)
		}
	}()
	fn()
}

// Faults counts the panics recovered in the sessions' handling.
func (m *Manager) Faults() uint64 { return m.faults.Load() }

// Faulted ends a live session because a request on it failed in a way
// nobody planned for (an API handler panicked): its state can no longer
// be trusted. It fails with reason api_fault and its card data is wiped,
// as for any end; the call goes on. A session whose processor is running
// ends when the processor returns, unless the payment reached an
// outcome.
func (s *Session) Faulted() {
	s.m.faults.Add(1)
	s.m.endFaulted(s, ReasonAPIFault)
}

// endFaulted ends s after a fault. Should that panic too (the state it
// works on is what the fault broke), the card data is wiped directly,
// without records, if the session's lock can be had: nothing here may
// take the caller down.
func (m *Manager) endFaulted(s *Session, reason string) {
	defer func() {
		if v := recover(); v != nil {
			m.log.Error("capture: panic ending a session after a fault; wiping its card data directly",
				append([]zap.Field{zap.String("payment_id", s.id)}, panics.Fields(v)...)...)
			if s.mu.TryLock() {
				if !s.busy {
					for _, f := range s.fields {
						f.wipe()
					}
				}
				s.mu.Unlock()
			}
		}
	}()
	s.lock()
	defer s.unlock()
	s.abort(StateFailed, reason, m.now())
}
