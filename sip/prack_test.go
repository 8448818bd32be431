package sip

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

const agentEarlySDP = "v=0\no=a 1 1 IN IP4 10.2.2.2\ns=-\nc=IN IP4 10.2.2.2\nt=0 0\nm=audio 8000 RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\n"

// readSkipping returns the next response with code want, passing over
// retransmitted responses with a code in skip.
func (p *peer) readSkipping(want int, skip ...int) *sip.Response {
	p.t.Helper()
	for {
		m := p.read()
		r, ok := m.(*sip.Response)
		if ok && r.StatusCode == want {
			return r
		}
		skipped := false
		for _, s := range skip {
			skipped = skipped || ok && r.StatusCode == s
		}
		if !skipped {
			p.t.Fatalf("got %s, want response %d", m.String(), want)
		}
	}
}

// prackFrom is the customer's PRACK of a reliable 18x on call callID.
func prackFrom(cust *peer, tg *testGW, callID, toTag string, cseq int, rack string) string {
	return fmt.Sprintf("PRACK sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-prack-%d\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: %s\nCSeq: %d PRACK\nRAck: %s\nMax-Forwards: 70\nContent-Length: 0\n\n",
		tg.carrier, cust.addr(), cseq, toTag, callID, cseq, rack)
}

// TestPRACKBothLegs: the agent's reliable 183 (Require: 100rel, RSeq)
// gets the gateway's PRACK on the platform leg; the customer, who
// supports 100rel, gets the gateway's own reliable 183, retransmitted
// until its PRACK, which the gateway answers; the 2xx then carries no
// second answer. A PRACK that acknowledges nothing gets 481. A customer
// without 100rel gets the 183 unreliably (the control).
func TestPRACKBothLegs(t *testing.T) {
	tests := []struct {
		name      string
		supported string
		reliable  bool
	}{
		{"customer supports 100rel", "Supported: 100rel, timer\n", true},
		{"customer requires 100rel", "Require: 100rel\nSupported: timer\n", true},
		{"customer without 100rel", "Supported: timer\n", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent, cust := newPeer(t), newPeer(t)
			tg := startTestGW(t, "127.0.0.0/8", agent.addr())
			callID := fmt.Sprintf("prack-%d", i)
			cust.send(tg.carrier, invite(cust, tg.carrier, callID, tt.supported, customerSDP))
			inv := agent.readRequest(sip.INVITE)
			if !supports(inv, "100rel") {
				t.Fatalf("the gateway's INVITE does not offer 100rel: Supported %q", headerValue(inv, "Supported"))
			}
			agent.respond(tg.plat, inv, 183, "Session Progress", "Require: 100rel\nRSeq: 7\n", agentEarlySDP)
			pr := agent.readRequest(sip.PRACK)
			if got, want := headerValue(pr, "RAck"), fmt.Sprintf("7 %d INVITE", inv.CSeq().SeqNo); got != want {
				t.Errorf("gateway's PRACK RAck %q, want %q", got, want)
			}
			if tag, _ := pr.To().Params.Get("tag"); tag != "agent1" {
				t.Errorf("PRACK To tag %q, want the early dialog's agent1", tag)
			}
			agent.respond(tg.plat, pr, 200, "OK", "", "")

			early := cust.readResponse(183)
			rseq, reliable := rseqOf(early)
			if reliable != tt.reliable {
				t.Fatalf("183 to the customer reliable = %v, want %v (Require %q RSeq %q)", reliable, tt.reliable, headerValue(early, "Require"), headerValue(early, "RSeq"))
			}
			if !strings.Contains(string(early.Body()), "m=audio") {
				t.Errorf("183 without its early-media SDP:\n%s", early.Body())
			}
			toTag := early.To().Value()
			if tt.reliable {
				// Not acknowledged: sent again (T1).
				again := cust.readResponse(183)
				if r2, _ := rseqOf(again); r2 != rseq {
					t.Errorf("retransmission RSeq %d, want %d", r2, rseq)
				}
				cust.send(tg.carrier, prackFrom(cust, tg, callID, toTag, 2, fmt.Sprintf("%d 1 INVITE", rseq+1)))
				cust.readSkipping(481, 183)
				cust.send(tg.carrier, prackFrom(cust, tg, callID, toTag, 3, fmt.Sprintf("%d 1 INVITE", rseq)))
				cust.readSkipping(200, 183)
			}
			agent.respond(tg.plat, inv, 200, "OK", "", "")
			agent.readRequest(sip.ACK)
			ok := cust.readSkipping(200, 183)
			if tt.reliable && len(ok.Body()) != 0 {
				t.Errorf("2xx repeats the answer the reliable 183 gave:\n%s", ok.Body())
			}
			if !tt.reliable && !strings.Contains(string(ok.Body()), "m=audio") {
				t.Errorf("2xx without the answer the unreliable 183 previewed")
			}
			cust.send(tg.carrier, fmt.Sprintf("ACK sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ack-%s\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: %s\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), callID, toTag, callID))
			hangUp(t, tg, cust, agent, callID, toTag, 9)
		})
	}
}

// TestRequire420: an option tag the gateway does not do in Require gets
// 420 with Unsupported naming it, on a new call and inside one.
func TestRequire420(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGW(t, "127.0.0.0/8", agent.addr())
	cust.send(tg.carrier, invite(cust, tg.carrier, "req-1", "Require: timer, foo\n", customerSDP))
	res := cust.readResponse(420)
	if u := headerValue(res, "Unsupported"); u != "foo" {
		t.Errorf("Unsupported = %q, want foo", u)
	}
	toTag := establish(t, tg, cust, agent, "req-2")
	cust.sendRaw(tg, inDialogRequest(cust, tg, "req-2", toTag, "UPDATE", 5, "Require: gruu\n", "", ""))
	res = cust.readResponse(420)
	if u := headerValue(res, "Unsupported"); u != "gruu" {
		t.Errorf("Unsupported = %q, want gruu", u)
	}
	hangUp(t, tg, cust, agent, "req-2", toTag, 9)
}
