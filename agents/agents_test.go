package agents

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/media/webrtc"
	"github.com/tonevault/tonevault/media/webrtc/webrtctest"
)

type memAudit struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (m *memAudit) Append(_ context.Context, r audit.Record) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, r)
	return uint64(len(m.recs)), nil
}

// has reports a record of event with reason for callID.
func (m *memAudit) has(event audit.Event, reason audit.Reason, callID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.ContainsFunc(m.recs, func(r audit.Record) bool {
		return r.Event == event && r.Reason == reason && r.CallID == callID
	})
}

type env struct {
	s     *Service
	audit *memAudit
	relay netip.AddrPort
}

func newEnv(t *testing.T, ring time.Duration, connect time.Duration) *env {
	t.Helper()
	rc := webrtc.DefaultConfig()
	if connect > 0 {
		rc.ConnectTimeout = connect
	}
	e, err := webrtc.NewEngine(rc, netip.MustParseAddr("127.0.0.1"), webrtc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	m := &memAudit{}
	cfg := Config{Pools: map[string]PoolConfig{"sales": {RingTimeout: ring}, "support": {RingTimeout: ring}}}
	s, err := New(cfg, e, Options{Audit: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &env{s: s, audit: m, relay: c.LocalAddr().(*net.UDPAddr).AddrPort()}
}

func (e *env) call(id string) Call {
	return Call{ID: id, Caller: "447700900123", Callee: "pay", Correlation: map[string]string{"X-Interaction-ID": "i-1"}, Codec: media.PCMU, Relay: e.relay}
}

func (e *env) signIn(t *testing.T, agent string, pools ...string) *Session {
	t.Helper()
	ss, err := e.s.SignIn(Identity{Key: "crm", AgentID: agent, Pools: pools, TokenID: "at_" + agent})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ss.Close)
	if ev := next(t, ss); ev.Type != "ready" || ev.Agent != agent {
		t.Fatalf("first event %+v, want ready", ev)
	}
	return ss
}

// next is the session's next event.
func next(t *testing.T, ss *Session) Event {
	t.Helper()
	select {
	case ev, ok := <-ss.Events():
		if !ok {
			t.Fatal("session ended")
		}
		return ev
	case <-time.After(20 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

// nextOf skips events until one of type typ.
func nextOf(t *testing.T, ss *Session, typ, state string) Event {
	t.Helper()
	for {
		if ev := next(t, ss); ev.Type == typ && (state == "" || ev.State == state) {
			return ev
		}
	}
}

type ringResult struct {
	leg Leg
	err error
}

func (e *env) ring(pool string, c Call, ctx context.Context) chan ringResult {
	out := make(chan ringResult, 1)
	go func() {
		leg, err := e.s.Ring(ctx, pool, c)
		out <- ringResult{leg, err}
	}()
	return out
}

func browser(t *testing.T) *webrtctest.Browser {
	t.Helper()
	b, err := webrtctest.New(webrtctest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func offer(t *testing.T, b *webrtctest.Browser, noCandidates bool) []byte {
	t.Helper()
	o, err := b.Offer(noCandidates)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func wait(t *testing.T, ch chan ringResult) ringResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("Ring did not return")
	}
	return ringResult{}
}

func TestRingNobody(t *testing.T) {
	e := newEnv(t, time.Minute, 0)
	e.signIn(t, "carol", "support")
	if _, err := e.s.Ring(context.Background(), "sales", e.call("c-1")); !errors.Is(err, ErrNoAgents) {
		t.Errorf("no agent of the pool signed in: %v, want ErrNoAgents", err)
	}
	if _, err := e.s.Ring(context.Background(), "nope", e.call("c-2")); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown pool: %v", err)
	}
}

// TestFirstAnswerWins: two agents of the pool ring, a third of another
// pool does not; the first answer connects and has the call, the other
// hears it was answered elsewhere and cannot take it; the agent hangs up.
func TestFirstAnswerWins(t *testing.T) {
	e := newEnv(t, time.Minute, 0)
	alice, bob := e.signIn(t, "alice", "sales"), e.signIn(t, "bob", "sales", "support")
	carol := e.signIn(t, "carol", "support")
	res := e.ring("sales", e.call("c-1"), context.Background())
	for _, ss := range []*Session{alice, bob} {
		ev := next(t, ss)
		if ev.Type != "incoming" || ev.CallID != "c-1" || ev.Caller != "447700900123" || ev.Correlation["X-Interaction-ID"] != "i-1" {
			t.Errorf("%s: %+v, want the incoming call with its caller and correlation", ss.id.AgentID, ev)
		}
	}
	select {
	case ev := <-carol.Events():
		t.Errorf("an agent of another pool was rung: %+v", ev)
	default:
	}
	b := browser(t)
	ans, err := e.s.Answer(alice.Identity(), "c-1", offer(t, b, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Answer(bob.Identity(), "c-1", offer(t, browser(t), false)); !errors.Is(err, ErrTaken) {
		t.Errorf("a second answer while the first connects: %v, want ErrTaken", err)
	}
	if err := b.Answer(ans); err != nil {
		t.Fatal(err)
	}
	r := wait(t, res)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.leg.Agent() != "agent:crm:alice" {
		t.Errorf("answered by %q", r.leg.Agent())
	}
	if ev := nextOf(t, bob, "ring_ended", ""); ev.Reason != "answered_elsewhere" {
		t.Errorf("bob: %+v", ev)
	}
	if _, err := e.s.Answer(bob.Identity(), "c-1", offer(t, browser(t), false)); !errors.Is(err, ErrNotRinging) {
		t.Errorf("an answer after the call was taken: %v", err)
	}
	r.leg.Answered()
	nextOf(t, alice, "call", "connected")
	if !e.s.OnCall(alice.Identity(), "c-1") || e.s.OnCall(bob.Identity(), "c-1") {
		t.Error("OnCall does not say alice has the call")
	}
	if err := e.s.Hangup(bob.Identity(), "c-1"); !errors.Is(err, ErrNotOnCall) {
		t.Errorf("bob hangs up alice's call: %v", err)
	}
	if err := e.s.Hangup(alice.Identity(), "c-1"); err != nil {
		t.Fatal(err)
	}
	<-r.leg.Done()
	if r.leg.Reason() != audit.ReasonAgentHangup {
		t.Errorf("reason %q", r.leg.Reason())
	}
	r.leg.Close(audit.ReasonCompleted)
	if ev := nextOf(t, alice, "call", "ended"); ev.Reason != "agent_hangup" {
		t.Errorf("alice: %+v", ev)
	}
	for _, want := range []audit.Event{audit.EventAgentCallAnswered, audit.EventAgentCallEnded} {
		reason := audit.Reason("")
		if want == audit.EventAgentCallEnded {
			reason = audit.ReasonAgentHangup
		}
		if !e.audit.has(want, reason, "c-1") {
			t.Errorf("no %s (%s) record", want, reason)
		}
	}
	// Alice is free again: the next call rings her.
	res = e.ring("sales", e.call("c-2"), context.Background())
	if ev := nextOf(t, alice, "incoming", ""); ev.CallID != "c-2" {
		t.Errorf("%+v", ev)
	}
	alice.Close()
	bob.Close()
	if r := wait(t, res); !errors.Is(r.err, ErrNoAnswer) {
		t.Errorf("every agent rung left: %v, want ErrNoAnswer", r.err)
	}
}

// TestFailedAnswersRingOn: a bad offer and an offer that never connects
// each fail with their reason, audited; the call rings on and another
// agent takes it.
func TestFailedAnswersRingOn(t *testing.T) {
	e := newEnv(t, time.Minute, 500*time.Millisecond)
	alice, bob := e.signIn(t, "alice", "sales"), e.signIn(t, "bob", "sales")
	res := e.ring("sales", e.call("c-1"), context.Background())
	nextOf(t, alice, "incoming", "")
	nextOf(t, bob, "incoming", "")

	if _, err := e.s.Answer(alice.Identity(), "c-1", []byte("v=0\r\nnonsense")); !errors.Is(err, webrtc.ErrBadSDP) {
		t.Fatalf("bad SDP: %v", err)
	}
	if ev := nextOf(t, alice, "call", "failed"); ev.Reason != "bad_sdp" {
		t.Errorf("%+v", ev)
	}
	if _, err := e.s.Answer(alice.Identity(), "c-1", offer(t, browser(t), true)); err != nil {
		t.Fatal(err)
	}
	if ev := nextOf(t, alice, "call", "failed"); ev.Reason != "ice_failed" {
		t.Errorf("%+v", ev)
	}
	b := browser(t)
	ans, err := e.s.Answer(bob.Identity(), "c-1", offer(t, b, false))
	if err != nil {
		t.Fatal(err)
	}
	b.Answer(ans)
	r := wait(t, res)
	if r.err != nil || r.leg.Agent() != "agent:crm:bob" {
		t.Fatalf("%+v", r)
	}
	for _, reason := range []audit.Reason{audit.ReasonBadSDP, audit.ReasonICEFailed} {
		if !e.audit.has(audit.EventAgentAnswerFailed, reason, "c-1") {
			t.Errorf("no agent.answer_failed %s", reason)
		}
	}
	// Bob's tab closes mid-call: the call is his no more.
	b.Close()
	select {
	case <-r.leg.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the leg did not end when the browser closed")
	}
	if r.leg.Reason() != audit.ReasonAgentGone {
		t.Errorf("reason %q", r.leg.Reason())
	}
	r.leg.Close(audit.ReasonCompleted)
	if !e.audit.has(audit.EventAgentCallEnded, audit.ReasonAgentGone, "c-1") {
		t.Error("no agent.call_ended agent_gone")
	}
}

// TestRingEnds: the pool's ring timeout, and the caller giving up while
// an answer connects, which is then dropped.
func TestRingEnds(t *testing.T) {
	e := newEnv(t, 300*time.Millisecond, 0)
	alice := e.signIn(t, "alice", "sales")
	if r := wait(t, e.ring("sales", e.call("c-1"), context.Background())); !errors.Is(r.err, ErrNoAnswer) {
		t.Errorf("nobody answered: %v", r.err)
	}
	if ev := nextOf(t, alice, "ring_ended", ""); ev.Reason != "no_answer" {
		t.Errorf("%+v", ev)
	}

	e = newEnv(t, time.Minute, time.Minute)
	alice = e.signIn(t, "alice", "sales")
	ctx, cancel := context.WithCancel(context.Background())
	res := e.ring("sales", e.call("c-2"), ctx)
	nextOf(t, alice, "incoming", "")
	if _, err := e.s.Answer(alice.Identity(), "c-2", offer(t, browser(t), true)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if r := wait(t, res); !errors.Is(r.err, context.Canceled) {
		t.Errorf("caller gave up: %v", r.err)
	}
	if ev := nextOf(t, alice, "call", "ended"); ev.Reason != "caller_cancelled" {
		t.Errorf("%+v", ev)
	}
	// Free again.
	e.s.mu.Lock()
	for ss := range e.s.sessions {
		if ss.busy {
			t.Error("agent still busy after the caller gave up")
		}
	}
	e.s.mu.Unlock()
}
