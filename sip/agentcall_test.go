package sip

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap/zaptest"

	"github.com/tonevault/tonevault/agents"
	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
)

// fakePools is a pool "desk" whose Ring waits for the test: a leg on
// answer, an error on fail, or the caller giving up.
type fakePools struct {
	fallback string
	rung     chan agents.Call
	answer   chan *fakeLeg
	fail     chan error
	ctxErr   chan error
}

func newFakePools(fallback string) *fakePools {
	return &fakePools{fallback: fallback, rung: make(chan agents.Call, 1), answer: make(chan *fakeLeg, 1), fail: make(chan error, 1), ctxErr: make(chan error, 1)}
}

func (f *fakePools) Pool(name string) (string, bool) { return f.fallback, name == "desk" }

func (f *fakePools) Ring(ctx context.Context, pool string, c agents.Call) (agents.Leg, error) {
	f.rung <- c
	select {
	case l := <-f.answer:
		return l, nil
	case err := <-f.fail:
		return nil, err
	case <-ctx.Done():
		f.ctxErr <- ctx.Err()
		return nil, ctx.Err()
	}
}

type fakeLeg struct {
	addr     netip.AddrPort
	done     chan struct{}
	reason   audit.Reason
	answered chan struct{}
	closed   chan audit.Reason
	once     sync.Once
}

func newFakeLeg() *fakeLeg {
	return &fakeLeg{addr: netip.MustParseAddrPort("127.0.0.1:41000"), done: make(chan struct{}), answered: make(chan struct{}), closed: make(chan audit.Reason, 1)}
}

func (l *fakeLeg) Addr() netip.AddrPort { return l.addr }
func (l *fakeLeg) Agent() string        { return "agent:crm:alice" }
func (l *fakeLeg) Answered()            { close(l.answered) }
func (l *fakeLeg) Done() <-chan struct{} {
	return l.done
}
func (l *fakeLeg) Reason() audit.Reason { return l.reason }
func (l *fakeLeg) Close(r audit.Reason) { l.once.Do(func() { l.closed <- r }) }

// hangup is the agent hanging up (or its media going, with reason).
func (l *fakeLeg) hangup(r audit.Reason) { l.reason = r; close(l.done) }

func startAgentGW(t *testing.T, pools *fakePools, fallbackAgent string, mod func(*Config)) *testGW {
	t.Helper()
	if fallbackAgent == "" {
		fallbackAgent = "127.0.0.1:9"
	}
	return startTestGWWithOptions(t, "127.0.0.0/8", fallbackAgent, func(c *Config) {
		c.Trunks.Platform.Target = "agents:desk"
		if mod != nil {
			mod(c)
		}
	}, func(o *Options) { o.Agents = pools })
}

func ackFor(tg *testGW, cust *peer, callID, toTag string, cseq int, method string) string {
	return fmt.Sprintf("ACK sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ack-%s-%d\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: %s\nCSeq: %d %s\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), callID, cseq, toTag, callID, cseq, method)
}

func waitAgentCallEnded(t *testing.T, tg *testGW) CallInfo {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if calls := tg.g.Registry().List(Filter{State: StateEnded}); len(calls) == 1 {
			return calls[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("call did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAgentCall: a call routed to a pool rings it with the caller and
// the call's relay address; the agent's answer makes the gateway answer
// the caller with the relay's carrier address, and tells the relay that
// the platform side is the agent's leg, plain RTP in the caller's codec.
// A hold from the caller is answered by the gateway; the agent hangs up
// and the caller gets BYE.
func TestAgentCall(t *testing.T) {
	pools := newFakePools("")
	tg := startAgentGW(t, pools, "", nil)
	cust := newPeer(t)
	cust.send(tg.carrier, invite(cust, tg.carrier, "ag-1", "X-Interaction-ID: i-77\n", customerSDP))
	cust.readResponse(180)
	c := <-pools.rung
	sess := tg.relay.session(0)
	if c.Caller != "441234567890" || c.Correlation["X-Interaction-ID"] != "i-77" || c.Codec != media.PCMU || c.Relay != sess.Local(media.Platform) {
		t.Errorf("rung with %+v", c)
	}
	leg := newFakeLeg()
	pools.answer <- leg
	ok := cust.readResponse(200)
	if !strings.Contains(string(ok.Body()), fmt.Sprintf("m=audio %d ", sess.Local(media.Carrier).Port())) {
		t.Errorf("answer to the caller does not point at the relay:\n%s", ok.Body())
	}
	toTag := ok.To().Value()
	cust.send(tg.carrier, ackFor(tg, cust, "ag-1", toTag, 1, "ACK"))
	<-leg.answered
	sess.mu.Lock()
	plat := sess.remote[media.Platform]
	sess.mu.Unlock()
	if len(plat) != 1 || plat[0].Addr != leg.addr || plat[0].SRTP != nil || len(plat[0].PayloadTypes) != 1 || plat[0].PayloadTypes[0].Codec != media.PCMU {
		t.Errorf("the relay's platform side is %+v, want the agent leg's address, PCMU, plain RTP", plat)
	}
	if info, _ := tg.g.Registry().Get(c.ID); info.State != StateAnswered {
		t.Errorf("state %s", info.State)
	}

	// The caller puts the agent on hold: the gateway answers for the leg.
	hold := strings.ReplaceAll(strings.TrimLeft(strings.Replace(customerSDP, "a=rtcp-mux", "a=sendonly", 1), "\n"), "\n", "\r\n")
	cust.sendRaw(tg, inDialogRequest(cust, tg, "ag-1", toTag, "INVITE", 2, "Contact: <sip:customer@"+cust.addr()+">\n", "application/sdp", hold))
	res := cust.readResponse(200)
	if !strings.Contains(string(res.Body()), "a=recvonly") {
		t.Errorf("hold answered without recvonly:\n%s", res.Body())
	}
	cust.send(tg.carrier, ackFor(tg, cust, "ag-1", toTag, 2, "ACK"))

	leg.hangup(audit.ReasonAgentHangup)
	bye := cust.readRequest(sip.BYE)
	cust.respond(tg.carrier, bye, 200, "OK", "", "")
	info := waitAgentCallEnded(t, tg)
	if info.Outcome != "completed" {
		t.Errorf("outcome %q", info.Outcome)
	}
	select {
	case r := <-leg.closed:
		if r != audit.ReasonCompleted {
			t.Errorf("leg closed with %q", r)
		}
	case <-time.After(5 * time.Second):
		t.Error("the leg was never closed")
	}
	if recs := tg.audit.find(audit.EventSIPCallEnded); len(recs) != 1 || recs[0].Reason != audit.ReasonCompleted || recs[0].Trunk != "platform" {
		t.Errorf("sip.call_ended %+v", recs)
	}
}

// TestAgentCallEnds: the caller hangs up, the agent's media goes, and
// the pool has nobody: each ends the call its way.
func TestAgentCallEnds(t *testing.T) {
	t.Run("caller hangs up", func(t *testing.T) {
		pools := newFakePools("")
		tg := startAgentGW(t, pools, "", nil)
		cust := newPeer(t)
		cust.send(tg.carrier, invite(cust, tg.carrier, "ag-2", "", customerSDP))
		cust.readResponse(180)
		<-pools.rung
		leg := newFakeLeg()
		pools.answer <- leg
		ok := cust.readResponse(200)
		cust.send(tg.carrier, ackFor(tg, cust, "ag-2", ok.To().Value(), 1, "ACK"))
		<-leg.answered
		cust.send(tg.carrier, fmt.Sprintf("BYE sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-bye\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: ag-2\nCSeq: 3 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), ok.To().Value()))
		cust.readResponse(200)
		if r := <-leg.closed; r != audit.ReasonCompleted {
			t.Errorf("leg closed with %q", r)
		}
		if info := waitAgentCallEnded(t, tg); info.Outcome != "completed" {
			t.Errorf("outcome %q", info.Outcome)
		}
	})
	t.Run("agent gone", func(t *testing.T) {
		pools := newFakePools("")
		tg := startAgentGW(t, pools, "", nil)
		cust := newPeer(t)
		cust.send(tg.carrier, invite(cust, tg.carrier, "ag-3", "", customerSDP))
		cust.readResponse(180)
		<-pools.rung
		leg := newFakeLeg()
		pools.answer <- leg
		ok := cust.readResponse(200)
		cust.send(tg.carrier, ackFor(tg, cust, "ag-3", ok.To().Value(), 1, "ACK"))
		<-leg.answered
		leg.hangup(audit.ReasonAgentGone)
		bye := cust.readRequest(sip.BYE)
		cust.respond(tg.carrier, bye, 200, "OK", "", "")
		if info := waitAgentCallEnded(t, tg); info.Outcome != "agent_gone" {
			t.Errorf("outcome %q", info.Outcome)
		}
		if recs := tg.audit.find(audit.EventSIPCallEnded); len(recs) != 1 || recs[0].Reason != audit.ReasonAgentGone {
			t.Errorf("sip.call_ended %+v", recs)
		}
	})
	t.Run("nobody", func(t *testing.T) {
		pools := newFakePools("")
		tg := startAgentGW(t, pools, "", nil)
		cust := newPeer(t)
		cust.send(tg.carrier, invite(cust, tg.carrier, "ag-4", "", customerSDP))
		<-pools.rung
		pools.fail <- agents.ErrNoAgents
		cust.readResponse(180)
		cust.readResponse(480)
		if info := waitAgentCallEnded(t, tg); info.Outcome != "no_answer" {
			t.Errorf("outcome %q", info.Outcome)
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		pools := newFakePools("")
		tg := startAgentGW(t, pools, "", nil)
		cust := newPeer(t)
		cust.send(tg.carrier, invite(cust, tg.carrier, "ag-5", "", customerSDP))
		cust.readResponse(180)
		<-pools.rung
		cust.send(tg.carrier, fmt.Sprintf("CANCEL sip:4420700000@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ag-5\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: <sip:4420700000@%s>\nCall-ID: ag-5\nCSeq: 1 CANCEL\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), tg.carrier))
		if err := <-pools.ctxErr; err == nil {
			t.Error("the ring did not stop")
		}
		if info := waitAgentCallEnded(t, tg); info.Outcome != "cancelled" {
			t.Errorf("outcome %q", info.Outcome)
		}
	})
}

// TestAgentFallback: nobody answers in the pool, and the call goes to the
// pool's fallback SIP target, which answers as any platform.
func TestAgentFallback(t *testing.T) {
	agent := newPeer(t)
	pools := newFakePools("sip:queue@" + agent.addr())
	tg := startAgentGW(t, pools, agent.addr(), nil)
	cust := newPeer(t)
	cust.send(tg.carrier, invite(cust, tg.carrier, "ag-6", "", customerSDP))
	<-pools.rung
	pools.fail <- agents.ErrNoAnswer
	inv := agent.readRequest(sip.INVITE)
	if inv.Recipient.User != "queue" {
		t.Errorf("fallback INVITE to %s", inv.Recipient.String())
	}
	agent.respond(tg.plat, inv, 200, "OK", "", "v=0\no=a 1 1 IN IP4 10.2.2.2\ns=-\nc=IN IP4 10.2.2.2\nt=0 0\nm=audio 8000 RTP/AVP 0\n")
	agent.readRequest(sip.ACK)
	cust.readResponse(180)
	cust.readResponse(200)
}

// TestRoutes: a called number routed to a pool rings it; another goes to
// the trunk's SIP target. A pool the agents do not have is refused at
// start, and so is one on the carrier side.
func TestRoutes(t *testing.T) {
	agent := newPeer(t)
	pools := newFakePools("")
	tg := startTestGWWithOptions(t, "127.0.0.0/8", agent.addr(), func(c *Config) {
		c.Routes = []Route{{Callee: "4420700000", Target: "agents:desk"}}
	}, func(o *Options) { o.Agents = pools })
	cust := newPeer(t)
	cust.send(tg.carrier, invite(cust, tg.carrier, "rt-1", "", customerSDP))
	<-pools.rung
	other := strings.ReplaceAll(invite(cust, tg.carrier, "rt-2", "", customerSDP), "4420700000", "4420799999")
	cust.send(tg.carrier, other)
	if inv := agent.readRequest(sip.INVITE); inv.Recipient.User != "agent" {
		t.Errorf("other number went to %s", inv.Recipient.String())
	}

	for _, tt := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"unknown pool", func(c *Config) { c.Trunks.Platform.Target = "agents:nope" }, "no such pool"},
		{"carrier side", func(c *Config) { c.Trunks.Carrier.Target = "agents:desk" }, "platform side only"},
		{"bad route", func(c *Config) { c.Routes = []Route{{Callee: "a b", Target: "agents:desk"}} }, "sip.routes[0].callee"},
	} {
		cfg := Config{Trunks: Trunks{
			Carrier:  TrunkConfig{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Transports: []string{"udp"}, Target: "sip:x@127.0.0.1:9"},
			Platform: TrunkConfig{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Transports: []string{"udp"}, Target: "sip:x@127.0.0.1:9"},
		}}
		tt.mod(&cfg)
		err := cfg.Validate()
		if err == nil {
			var g *Gateway
			g, err = New(cfg, Options{Relay: &fakeRelay{}, Agents: pools})
			if g != nil {
				g.Close(context.Background())
			}
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

// startTestGWWithOptions is startTestGWWith with the gateway's Options
// changed by opt too.
func startTestGWWithOptions(t testing.TB, allow string, agent string, mod func(*Config), opt func(*Options)) *testGW {
	t.Helper()
	tg := &testGW{relay: &fakeRelay{}, audit: newMemAudit(t)}
	pfx := []Network{MustParseNetwork(allow)}
	cfg := Config{
		Trunks: Trunks{
			Carrier:  TrunkConfig{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Transports: []string{"udp"}, Allow: pfx, Target: "sip:{user}@127.0.0.1:9"},
			Platform: TrunkConfig{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Transports: []string{"udp"}, Allow: pfx, Target: "sip:agent@" + agent},
		},
		RejectUninspectable: true,
	}
	if mod != nil {
		mod(&cfg)
	}
	o := Options{Relay: tg.relay, Audit: tg.audit, Log: zaptest.NewLogger(t)}
	opt(&o)
	var err error
	if tg.g, err = New(cfg, o); err != nil {
		t.Fatal(err)
	}
	tg.g.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tg.g.Close(ctx)
	})
	tg.carrier, tg.plat = tg.g.Addr("carrier"), tg.g.Addr("platform")
	return tg
}
