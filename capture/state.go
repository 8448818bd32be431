package capture

// legal is the state machine: from → the states it may go to. collecting →
// collecting is the move from one field to the next; complete and tokenized
// go back to collecting when the agent resets a field or restarts.
// cancelled and expired can be reached from every live state (created
// only in principle: Start leaves it at once). A call end or expiry while
// the processor runs is applied when it returns (see Session.abort).
var legal = map[State][]State{
	StateCreated:    {StateCollecting, StateCancelled, StateExpired},
	StateCollecting: {StateCollecting, StateComplete, StateFailed, StateCancelled, StateExpired},
	StateComplete:   {StateCollecting, StateTokenized, StateFailed, StateCancelled, StateExpired},
	// tokenized → failed: the audit trail went down (audit_unavailable).
	StateTokenized: {StateCollecting, StateSubmitting, StateFailed, StateCancelled, StateExpired},
	// submitting → tokenized: the PSP was unavailable; the agent may submit again.
	StateSubmitting: {StateTokenized, StateApproved, StateDeclined, StateFailed, StateCancelled, StateExpired},
}

// States lists every state.
func States() []State {
	return []State{StateCreated, StateCollecting, StateComplete, StateTokenized, StateSubmitting,
		StateApproved, StateDeclined, StateFailed, StateCancelled, StateExpired}
}

// Final reports whether nothing can change a session in state s.
func (s State) Final() bool { _, live := legal[s]; return !live && s.Known() }

// Live reports whether s is a state a session can still leave.
func (s State) Live() bool { _, live := legal[s]; return live }

// Known reports whether s is one of States.
func (s State) Known() bool {
	for _, k := range States() {
		if k == s {
			return true
		}
	}
	return false
}

// CanTransition reports whether the state machine allows from → to.
func CanTransition(from, to State) bool {
	for _, s := range legal[from] {
		if s == to {
			return true
		}
	}
	return false
}
