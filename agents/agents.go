package agents

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/media/webrtc"
)

// AuditSink takes audit records; *audit.Queue is one.
type AuditSink interface {
	Append(ctx context.Context, r audit.Record) (uint64, error)
}

// Identity is who a signed-in agent is, as its agent token says.
type Identity struct {
	Key     string   // the API key that minted the token
	AgentID string   // the CRM's id for the agent
	Pools   []string // the pools the agent takes calls of
	TokenID string   // the token's id: the agent's answers and hang-ups are bound to it
}

// actor is the audit trail's "who" for an agent.
func (id Identity) actor() string { return "agent:" + id.Key + ":" + id.AgentID }

// Call is a call offered to a pool, as package sip describes it.
type Call struct {
	ID          string // the gateway's call id
	Caller      string // the caller's number, as the platform may see it
	Callee      string
	Correlation map[string]string
	// Codec is the call's G.711 format (the carrier's): the browser is
	// answered with it.
	Codec media.Codec
	// Relay is the media session's platform address: the agent's leg
	// takes the masked stream from there and sends the agent's audio
	// there.
	Relay netip.AddrPort
}

// Leg is the agent side of an answered call, for package sip.
type Leg interface {
	// Addr is where the media session's platform leg sends (the SDP of
	// the platform side names it).
	Addr() netip.AddrPort
	// Agent is who answered (the audit trail's actor).
	Agent() string
	// Answered tells the agent the caller got the answer: the call is up.
	Answered()
	// Done is closed when the agent ends the call: hang-up, or its media
	// gone. Reason then says which.
	Done() <-chan struct{}
	Reason() audit.Reason
	// Close ends the leg because the call ended (reason: its outcome,
	// for the agent page and the audit trail); sip calls it once, last,
	// however the call ended.
	Close(reason audit.Reason)
}

// Errors of Ring and of the agent's requests.
var (
	ErrNoAgents   = errors.New("agents: no agent of the pool is signed in and available")
	ErrNoAnswer   = errors.New("agents: no agent answered")
	ErrUnknown    = errors.New("agents: no such pool")
	ErrNotRinging = errors.New("agents: this call is not ringing for this agent")
	ErrTaken      = errors.New("agents: another agent answered this call")
	ErrBusy       = errors.New("agents: this agent is on a call")
	ErrNotOnCall  = errors.New("agents: this agent is not on this call")
)

// Options are the service's collaborators.
type Options struct {
	Audit      AuditSink // nil: no audit (tests)
	Logger     *zap.Logger
	Registerer prometheus.Registerer
}

// Service is the browser agents: who is signed in and available, the
// calls ringing them, and the calls they have.
type Service struct {
	cfg   Config
	rtc   *webrtc.Engine
	audit AuditSink
	log   *zap.Logger
	m     *metrics

	mu       sync.Mutex
	sessions map[*Session]struct{}
	rings    map[string]*ring    // by call id
	calls    map[string]*attempt // answered calls, by call id
	closed   bool
}

// New makes the service; rtc makes the agents' media legs.
func New(cfg Config, rtc *webrtc.Engine, opts Options) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rtc == nil {
		return nil, errors.New("agents: no WebRTC engine")
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &Service{cfg: cfg, rtc: rtc, audit: opts.Audit, log: log, m: newMetrics(opts.Registerer),
		sessions: map[*Session]struct{}{}, rings: map[string]*ring{}, calls: map[string]*attempt{}}
	return s, nil
}

// Pool reports whether name is a configured pool, and its fallback SIP
// target ("" for none).
func (s *Service) Pool(name string) (fallback string, ok bool) {
	p, ok := s.cfg.Pools[name]
	return p.Fallback, ok
}

// Pools are the configured pools' names, sorted.
func (s *Service) Pools() []string { return slices.Sorted(maps.Keys(s.cfg.Pools)) }

// ICEServers are the STUN and TURN servers the agent page uses.
func (s *Service) ICEServers() []webrtc.ICEServer { return s.rtc.ICEServers() }

func (s *Service) record(r audit.Record) {
	if s.audit == nil {
		return
	}
	if r.Actor == "" {
		r.Actor = "system"
	}
	if _, err := s.audit.Append(context.Background(), r); err != nil {
		s.log.Error("audit append failed", zap.String("event", string(r.Event)), zap.Error(err))
	}
}

// Close ends every session (their streams end) and every ringing call;
// the calls in progress are package sip's to end.
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	sessions := slices.Collect(maps.Keys(s.sessions))
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.Close()
	}
}

// Event is what an agent page's event stream carries.
type Event struct {
	// Type: "ready" (signed in), "incoming" (a call rings this agent),
	// "ring_ended" (it stopped ringing here: reason answered_elsewhere,
	// caller_cancelled, no_answer), "call" (this agent's call: state
	// connecting, connected, ended or failed, with a reason).
	Type        string             `json:"type"`
	CallID      string             `json:"call_id,omitempty"`
	Caller      string             `json:"caller,omitempty"`
	Callee      string             `json:"callee,omitempty"`
	Correlation map[string]string  `json:"correlation,omitempty"`
	State       string             `json:"state,omitempty"`
	Reason      string             `json:"reason,omitempty"`
	Agent       string             `json:"agent,omitempty"`
	Pools       []string           `json:"pools,omitempty"`
	ICEServers  []webrtc.ICEServer `json:"ice_servers,omitempty"`
	Available   *bool              `json:"available,omitempty"`
}

// sessionBuffer is how many events a session holds for a slow reader; a
// reader that falls that far behind is signed out.
const sessionBuffer = 64

// Session is one signed-in agent page: its event stream.
type Session struct {
	s  *Service
	id Identity

	events    chan Event
	done      chan struct{}
	closeOnce sync.Once

	// Under Service.mu:
	available bool
	busy      bool // answering or on a call
}

// SignIn opens a session for id: it is offered the calls of id's pools
// while it is available and not on a call.
func (s *Service) SignIn(id Identity) (*Session, error) {
	for _, p := range id.Pools {
		if _, ok := s.cfg.Pools[p]; !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknown, p)
		}
	}
	ss := &Session{s: s, id: id, events: make(chan Event, sessionBuffer), done: make(chan struct{}), available: true}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("agents: shutting down")
	}
	s.sessions[ss] = struct{}{}
	n := len(s.sessions)
	avail := true
	ss.sendLocked(Event{Type: "ready", Agent: id.AgentID, Pools: id.Pools, ICEServers: s.rtc.ICEServers(), Available: &avail})
	s.mu.Unlock()
	s.m.signedIn.Set(float64(n))
	s.record(audit.Record{Actor: id.actor(), Event: audit.EventAgentSignedIn, Outcome: audit.Success})
	return ss, nil
}

// Events are the session's events; the channel is closed when the
// session ends.
func (ss *Session) Events() <-chan Event { return ss.events }

// Done is closed when the session ends.
func (ss *Session) Done() <-chan struct{} { return ss.done }

// Identity is who the session is.
func (ss *Session) Identity() Identity { return ss.id }

// sendLocked queues ev; a session that cannot take it (its reader is
// gone or far behind) is ended. Caller holds Service.mu.
func (ss *Session) sendLocked(ev Event) {
	select {
	case <-ss.done:
		return
	default:
	}
	select {
	case ss.events <- ev:
	default:
		go ss.Close()
	}
}

// SetAvailable says whether the agent id (every page signed in with its
// token) takes calls now; an unavailable agent is not rung.
func (s *Service) SetAvailable(id Identity, on bool) {
	s.mu.Lock()
	for ss := range s.sessions {
		if ss.id.TokenID == id.TokenID {
			ss.available = on
			ss.sendLocked(Event{Type: "ready", Agent: ss.id.AgentID, Pools: ss.id.Pools, Available: &on})
		}
	}
	s.mu.Unlock()
	s.changed()
}

// Close signs the session out. A call the agent has goes on (its media
// is the leg's); rings offered to it stop counting it.
func (ss *Session) Close() {
	ss.closeOnce.Do(func() {
		s := ss.s
		s.mu.Lock()
		delete(s.sessions, ss)
		n := len(s.sessions)
		close(ss.done)
		close(ss.events)
		s.mu.Unlock()
		s.m.signedIn.Set(float64(n))
		s.record(audit.Record{Actor: ss.id.actor(), Event: audit.EventAgentSignedOut, Outcome: audit.Info})
		s.changed()
	})
}

// eligible reports whether ss may be rung for pool now. Caller holds mu.
func (ss *Session) eligible(pool string) bool {
	if !ss.available || ss.busy {
		return false
	}
	select {
	case <-ss.done:
		return false
	default:
	}
	return slices.Contains(ss.id.Pools, pool)
}

// changed wakes every ringing call to look at its agents again.
func (s *Service) changed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rings {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// ring is a call ringing a pool's agents.
type ring struct {
	call    Call
	pool    string
	offered map[*Session]bool
	claim   *attempt      // an answer being connected; nil: none
	won     chan *attempt // the attempt that connected
	wake    chan struct{} // something changed: look again
	over    bool
}

// Ring offers call to the pool's signed-in, available agents and returns
// the leg of the first whose answer connects. It fails with ErrNoAgents
// when none can be rung, ErrNoAnswer when none answered within the
// pool's ring timeout (or every agent rung has left), and ctx's error
// when the caller gave up first.
func (s *Service) Ring(ctx context.Context, pool string, call Call) (Leg, error) {
	pc, ok := s.cfg.Pools[pool]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknown, pool)
	}
	r := &ring{call: call, pool: pool, offered: map[*Session]bool{}, won: make(chan *attempt, 1), wake: make(chan struct{}, 1)}
	s.mu.Lock()
	if _, dup := s.rings[call.ID]; dup || s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("agents: call %s cannot ring", call.ID)
	}
	ev := Event{Type: "incoming", CallID: call.ID, Caller: call.Caller, Callee: call.Callee, Correlation: call.Correlation}
	for ss := range s.sessions {
		if ss.eligible(pool) {
			r.offered[ss] = true
			ss.sendLocked(ev)
		}
	}
	if len(r.offered) == 0 {
		s.mu.Unlock()
		s.m.rings.WithLabelValues("no_agents").Inc()
		return nil, ErrNoAgents
	}
	s.rings[call.ID] = r
	s.mu.Unlock()

	timeout := pc.RingTimeout
	if timeout <= 0 {
		timeout = DefaultRingTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case a := <-r.won:
			s.endRing(r, "answered_elsewhere", a)
			s.m.rings.WithLabelValues("answered").Inc()
			return a, nil
		case <-ctx.Done():
			s.endRing(r, "caller_cancelled", nil)
			s.m.rings.WithLabelValues("cancelled").Inc()
			return nil, ctx.Err()
		case <-timer.C:
			s.endRing(r, "no_answer", nil)
			s.m.rings.WithLabelValues("no_answer").Inc()
			return nil, ErrNoAnswer
		case <-r.wake:
			if s.deserted(r) {
				s.endRing(r, "no_answer", nil)
				s.m.rings.WithLabelValues("deserted").Inc()
				return nil, ErrNoAnswer
			}
		}
	}
}

// deserted reports a ring that no agent can answer any more: nobody is
// connecting, and every agent rung has left or become unavailable.
func (s *Service) deserted(r *ring) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.claim != nil {
		return false
	}
	for ss := range r.offered {
		if ss.eligible(r.pool) {
			return false
		}
	}
	return true
}

// endRing stops the ring: the agents rung hear that it ended (reason),
// except the winner, and an answer still connecting is dropped.
func (s *Service) endRing(r *ring, reason string, winner *attempt) {
	s.mu.Lock()
	r.over = true
	delete(s.rings, r.call.ID)
	claim := r.claim
	for ss := range r.offered {
		if winner != nil && ss == winner.sess {
			continue
		}
		ss.sendLocked(Event{Type: "ring_ended", CallID: r.call.ID, Reason: reason})
	}
	if winner != nil {
		s.calls[r.call.ID] = winner
	}
	s.mu.Unlock()
	if claim != nil && claim != winner {
		claim.abandon("caller_cancelled")
	}
	// A winner that connected just as the ring ended otherwise is let go.
	select {
	case a := <-r.won:
		if a != winner {
			a.abandon(reason)
		}
	default:
	}
}

// Answer takes the call for the agent id with its browser's SDP offer,
// and returns the SDP answer. The first agent to answer has the call
// while its media connects; another's answer meanwhile is ErrTaken. A
// bad offer is webrtc.ErrBadSDP, and the call rings on.
func (s *Service) Answer(id Identity, callID string, offer []byte) ([]byte, error) {
	s.mu.Lock()
	r := s.rings[callID]
	var ss *Session
	if r != nil {
		for o := range r.offered {
			if o.id.TokenID == id.TokenID && o.eligible(r.pool) {
				ss = o
				break
			}
		}
	}
	switch {
	case r == nil || r.over:
		s.mu.Unlock()
		if s.onCall(id, callID) {
			return nil, ErrTaken
		}
		return nil, ErrNotRinging
	case r.claim != nil:
		s.mu.Unlock()
		return nil, ErrTaken
	case ss == nil:
		s.mu.Unlock()
		return nil, ErrNotRinging
	}
	a := &attempt{s: s, r: r, sess: ss, id: id, call: r.call, done: make(chan struct{}), ended: make(chan struct{})}
	r.claim, ss.busy = a, true
	ss.sendLocked(Event{Type: "call", CallID: callID, State: "connecting"})
	s.mu.Unlock()

	leg, answer, err := s.rtc.NewLeg(offer, webrtc.LegParams{Codec: r.call.Codec, Relay: r.call.Relay, CallID: callID})
	if err != nil {
		a.failed(err)
		return nil, err
	}
	a.leg = leg
	go a.connect()
	return answer, nil
}

// onCall reports whether id's agent has callID answered.
func (s *Service) onCall(id Identity, callID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.calls[callID]
	return a != nil && a.id.TokenID == id.TokenID
}

// OnCall reports whether the agent id has the call callID: its agent
// page may then mint a widget token for it.
func (s *Service) OnCall(id Identity, callID string) bool { return s.onCall(id, callID) }

// Hangup ends the call callID for its agent id.
func (s *Service) Hangup(id Identity, callID string) error {
	s.mu.Lock()
	a := s.calls[callID]
	if a == nil || a.id.TokenID != id.TokenID {
		// Still connecting: the agent gives up its answer.
		if r := s.rings[callID]; r != nil && r.claim != nil && r.claim.id.TokenID == id.TokenID {
			c := r.claim
			s.mu.Unlock()
			c.abandon("agent_hangup")
			return nil
		}
		s.mu.Unlock()
		return ErrNotOnCall
	}
	s.mu.Unlock()
	a.end(audit.ReasonAgentHangup)
	return nil
}

// attempt is one agent's answer to a call: its media leg, connecting,
// then the call's agent leg once it won the ring.
type attempt struct {
	s    *Service
	r    *ring
	sess *Session
	id   Identity
	call Call
	leg  *webrtc.Leg

	mu       sync.Mutex
	reason   audit.Reason
	done     chan struct{} // the agent ended the call (Done)
	doneOnce sync.Once
	ended    chan struct{} // Close ran
	endOnce  sync.Once
}

// failed is an answer that did not connect: the agent hears why, the
// trail records it, and the call rings on.
func (a *attempt) failed(err error) {
	s := a.s
	reason := audit.Reason(webrtc.Reason(err))
	if !reason.Known() {
		reason = audit.ReasonFailed
	}
	s.mu.Lock()
	if a.r.claim == a {
		a.r.claim = nil
	}
	a.sess.busy = false
	a.sess.sendLocked(Event{Type: "call", CallID: a.call.ID, State: "failed", Reason: string(reason)})
	s.mu.Unlock()
	s.m.answers.WithLabelValues(string(reason)).Inc()
	s.record(audit.Record{Actor: a.id.actor(), CallID: a.call.ID, Event: audit.EventAgentAnswerFailed, Outcome: audit.Failure, Reason: reason})
	s.log.Info("agent answer failed", zap.String("call", a.call.ID), zap.String("reason", string(reason)))
	s.changed()
}

// connect waits for the leg's media and hands the attempt to the ring.
func (a *attempt) connect() {
	select {
	case <-a.leg.Connected():
	case <-a.leg.Done():
		if err := a.leg.Err(); err != nil {
			a.failed(err)
		} else {
			a.failed(webrtc.ErrGone)
		}
		return
	}
	// Handed over under the lock that endRing sets over under: a ring
	// that ended meanwhile never gets it, and one that has not will
	// (won holds one: there is one claim at a time).
	a.s.mu.Lock()
	over := a.r.over || a.r.claim != a
	if !over {
		a.r.won <- a
	}
	a.s.mu.Unlock()
	if over {
		a.abandon("caller_cancelled")
		return
	}
	// Media that stops from now on ends the call.
	go func() {
		select {
		case <-a.leg.Done():
			a.end(audit.ReasonAgentGone)
		case <-a.ended:
		}
	}()
}

// abandon drops an attempt that will not become the call.
func (a *attempt) abandon(reason string) {
	s := a.s
	if a.leg != nil {
		a.leg.Close()
	}
	s.mu.Lock()
	if a.r.claim == a {
		a.r.claim = nil
	}
	a.sess.busy = false
	a.sess.sendLocked(Event{Type: "call", CallID: a.call.ID, State: "ended", Reason: reason})
	s.mu.Unlock()
	s.changed()
}

// Addr, Agent, Answered, Done, Reason and Close make an attempt that won
// its ring the call's Leg.

func (a *attempt) Addr() netip.AddrPort { return a.leg.Addr() }
func (a *attempt) Agent() string        { return a.id.actor() }

func (a *attempt) Answered() {
	s := a.s
	s.mu.Lock()
	a.sess.sendLocked(Event{Type: "call", CallID: a.call.ID, State: "connected", Caller: a.call.Caller, Correlation: a.call.Correlation})
	s.mu.Unlock()
	s.m.answers.WithLabelValues("answered").Inc()
	s.record(audit.Record{Actor: a.id.actor(), CallID: a.call.ID, Event: audit.EventAgentCallAnswered, Outcome: audit.Success})
}

func (a *attempt) Done() <-chan struct{} { return a.done }

func (a *attempt) Reason() audit.Reason {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reason
}

// end is the agent's end of the call (hang-up, media gone): Done closes
// and sip ends the call, then calls Close.
func (a *attempt) end(reason audit.Reason) {
	a.doneOnce.Do(func() {
		a.mu.Lock()
		a.reason = reason
		a.mu.Unlock()
		close(a.done)
	})
}

func (a *attempt) Close(reason audit.Reason) {
	a.endOnce.Do(func() {
		close(a.ended)
		a.mu.Lock()
		if a.reason != "" {
			reason = a.reason // the agent ended it: that is why
		}
		a.mu.Unlock()
		a.leg.Close()
		s := a.s
		s.mu.Lock()
		if s.calls[a.call.ID] == a {
			delete(s.calls, a.call.ID)
		}
		a.sess.busy = false
		a.sess.sendLocked(Event{Type: "call", CallID: a.call.ID, State: "ended", Reason: string(reason)})
		s.mu.Unlock()
		toAgent, fromAgent, dropped := a.leg.Stats()
		s.log.Info("agent call ended", zap.String("call", a.call.ID), zap.String("reason", string(reason)),
			zap.Uint64("to_agent", toAgent), zap.Uint64("from_agent", fromAgent), zap.Uint64("dropped", dropped))
		s.record(audit.Record{Actor: a.id.actor(), CallID: a.call.ID, Event: audit.EventAgentCallEnded, Outcome: audit.Info, Reason: reason})
		s.changed()
	})
}
