package sip

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
)

// agentRequest is an in-dialog request of the agent on the dialog the
// gateway's INVITE inv made (the agent's tag is agent1, as respond
// gives).
func agentRequest(agent *peer, inv *sip.Request, method string, cseq int, extra, ct, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-a%s-%d\nFrom: %s;tag=agent1\nTo: %s\nCall-ID: %s\nCSeq: %d %s\nContact: <sip:agent@%s>\nMax-Forwards: 70\n%s",
		method, inv.Contact().Address.String(), agent.addr(), strings.ToLower(method), cseq, inv.To().Value(), inv.From().Value(), inv.CallID().Value(), cseq, method, agent.addr(), extra)
	body = strings.ReplaceAll(strings.TrimLeft(body, "\n"), "\n", "\r\n")
	if ct != "" {
		fmt.Fprintf(&b, "Content-Type: %s\n", ct)
	}
	fmt.Fprintf(&b, "Content-Length: %d\n\n", len(body))
	return b.String() + body
}

// transferEvents collects a registry's OnTransfer events.
type transferEvents struct {
	mu sync.Mutex
	ev []Transfer
}

func (e *transferEvents) list() []Transfer {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Transfer(nil), e.ev...)
}

const agent2SDP = "v=0\no=b 1 1 IN IP4 10.4.4.4\ns=-\nc=IN IP4 10.4.4.4\nt=0 0\nm=audio 7000 RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\n"

// TestTransfer: the agent REFERs the call to a second agent, blind or
// attended (Replaces); the gateway answers 202 and NOTIFYs, places the
// new leg itself through the platform trunk, gives the relay the new
// agent's media, tells the transferor 200 and hangs it up; the customer
// is now on the new agent's leg. A new leg that fails is reported to
// the transferor and the call stays with it; a transferor that hung up
// first does not stop the transfer.
func TestTransfer(t *testing.T) {
	tests := []struct {
		name     string
		referTo  func(a2 *peer) string
		replaces string // wanted on the new INVITE
		fail     int    // the new agent answers this instead of 200
		leave    bool   // the transferor hangs up right after 202
		hold     bool   // the transferor holds the customer first
		keep     bool   // transfer.capture: keep
	}{
		{name: "blind", referTo: func(a2 *peer) string { return "<sip:agent2@" + a2.addr() + ">" }},
		{name: "attended", referTo: func(a2 *peer) string {
			return "<sip:agent2@" + a2.addr() + "?Replaces=consult-1%40pbx%3Bto-tag%3Dt2%3Bfrom-tag%3Dt1>"
		}, replaces: "consult-1@pbx;to-tag=t2;from-tag=t1"},
		{name: "new agent busy", referTo: func(a2 *peer) string { return "<sip:agent2@" + a2.addr() + ">" }, fail: 486},
		{name: "transferor leaves first", referTo: func(a2 *peer) string { return "<sip:agent2@" + a2.addr() + ">" }, leave: true},
		{name: "held customer resumed", referTo: func(a2 *peer) string { return "<sip:agent2@" + a2.addr() + ">" }, hold: true},
		{name: "capture kept", referTo: func(a2 *peer) string { return "<sip:agent2@" + a2.addr() + ">" }, keep: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent, agent2, cust := newPeer(t), newPeer(t), newPeer(t)
			tg := startTestGWWith(t, "127.0.0.0/8", agent.addr(), func(c *Config) {
				if tt.keep {
					c.Transfer.Capture = CaptureKeep
				}
			})
			var events transferEvents
			t.Cleanup(tg.g.Registry().OnTransfer(func(tr Transfer) {
				events.mu.Lock()
				events.ev = append(events.ev, tr)
				events.mu.Unlock()
			}))
			callID := fmt.Sprintf("xfer-%d", i)
			toTag := establish(t, tg, cust, agent, callID)
			inv := tg.lastInvite
			sess := tg.relay.session(0)
			if tt.hold {
				hold := "v=0\no=a 1 2 IN IP4 10.2.2.2\ns=-\nc=IN IP4 10.2.2.2\nt=0 0\nm=audio 8000 RTP/AVP 0\na=sendonly\n"
				agent.send(tg.plat, agentRequest(agent, inv, "INVITE", 2, "", "application/sdp", hold))
				reinv := cust.readRequest(sip.INVITE)
				cust.respond(tg.carrier, reinv, 200, "OK", "", "v=0\no=c 1 2 IN IP4 10.1.1.1\ns=-\nc=IN IP4 10.1.1.1\nt=0 0\nm=audio 7000 RTP/AVP 0\na=recvonly\n")
				cust.readRequest(sip.ACK)
				agent.readResponse(200)
				agent.send(tg.plat, fmt.Sprintf("ACK %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-holdack\nFrom: %s;tag=agent1\nTo: %s\nCall-ID: %s\nCSeq: 2 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
					inv.Contact().Address.String(), agent.addr(), inv.To().Value(), inv.From().Value(), inv.CallID().Value()))
			}
			agent.send(tg.plat, agentRequest(agent, inv, "REFER", 3, "Refer-To: "+tt.referTo(agent2)+"\nReferred-By: <sip:agent1@pbx.example>\n", "", ""))
			agent.readResponse(202)
			if tt.leave {
				agent.send(tg.plat, agentRequest(agent, inv, "BYE", 4, "", "", ""))
			}
			// The transferor's side: the NOTIFYs (and the answer to its
			// BYE, when it left).
			notifies := make(chan []string, 1)
			byeAnswered := make(chan struct{})
			go func() {
				var got []string
				for {
					agent.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
					buf := make([]byte, 65535)
					n, err := agent.conn.Read(buf)
					if err != nil {
						notifies <- got
						return
					}
					m, err := sip.ParseMessage(buf[:n])
					if err != nil {
						continue
					}
					switch r := m.(type) {
					case *sip.Request:
						got = append(got, string(r.Method)+" "+strings.TrimSpace(string(r.Body()))+" "+headerValue(r, "Subscription-State"))
						agent.respond(tg.plat, r, 200, "OK", "", "")
						if r.Method == sip.BYE || strings.Contains(headerValue(r, "Subscription-State"), "terminated") && tt.fail != 0 {
							notifies <- got
							return
						}
					case *sip.Response:
						got = append(got, fmt.Sprintf("%d %s", r.StatusCode, r.CSeq().MethodName))
						if r.CSeq().MethodName == sip.BYE {
							close(byeAnswered)
						}
					}
				}
			}()
			inv2 := agent2.readRequest(sip.INVITE)
			if got := headerValue(inv2, "Replaces"); got != tt.replaces {
				t.Errorf("Replaces %q, want %q", got, tt.replaces)
			}
			if got := headerValue(inv2, "Referred-By"); got != "<sip:agent1@pbx.example>" {
				t.Errorf("Referred-By %q", got)
			}
			if inv2.Recipient.User != "agent2" || inv2.From().Address.User != "441234567890" || inv2.CallID().Value() == inv.CallID().Value() {
				t.Errorf("new leg: Request-URI %s, From %s, Call-ID %s", inv2.Recipient.String(), inv2.From().Value(), inv2.CallID().Value())
			}
			body := string(inv2.Body())
			if !strings.Contains(body, fmt.Sprintf("m=audio %d ", sess.local[media.Platform].Port())) || !strings.Contains(body, "o=tonevault ") || strings.Contains(body, "sendonly") || strings.Contains(body, "recvonly") {
				t.Errorf("the new agent's offer is not the relay's, sending and receiving:\n%s", body)
			}
			if tt.fail != 0 {
				agent2.respond(tg.plat, inv2, tt.fail, "Busy Here", "", "")
				agent2.readRequest(sip.ACK)
				got := strings.Join(<-notifies, " | ")
				if !strings.Contains(got, "NOTIFY SIP/2.0 100 Trying") || !strings.Contains(got, "NOTIFY SIP/2.0 486 Busy Here terminated") || strings.Contains(got, "BYE") {
					t.Errorf("transferor saw %s", got)
				}
				recs := waitRecords(t, tg, audit.EventSIPCallTransferred, 1)
				if recs[0].Outcome != audit.Failure || recs[0].Reason != audit.ReasonBusy || recs[0].Status != 486 {
					t.Errorf("sip.call_transferred %+v", recs[0])
				}
				// The call stays with the first agent.
				hangUp(t, tg, cust, agent, callID, toTag, 9)
				return
			}
			if tt.leave {
				// The transferor's BYE is taken before the new agent
				// answers (had it crossed the gateway's BYE, both would
				// be answered all the same).
				select {
				case <-byeAnswered:
				case <-time.After(5 * time.Second):
					t.Fatal("the transferor's BYE was not answered")
				}
			}
			agent2.respond(tg.plat, inv2, 200, "OK", "", agent2SDP)
			agent2.readRequest(sip.ACK)
			if tt.hold {
				resume := cust.readRequest(sip.INVITE)
				b := string(resume.Body())
				if strings.Contains(b, "sendonly") || strings.Contains(b, "recvonly") || !strings.Contains(b, fmt.Sprintf("m=audio %d ", sess.local[media.Carrier].Port())) {
					t.Errorf("the customer is not taken off hold:\n%s", b)
				}
				cust.respond(tg.carrier, resume, 200, "OK", "", customerSDP)
				cust.readRequest(sip.ACK)
			}
			got := strings.Join(<-notifies, " | ")
			want := "NOTIFY SIP/2.0 200 OK terminated;reason=noresource | BYE"
			if tt.leave {
				want = "200 BYE"
			}
			if !strings.Contains(got, want) || tt.leave && strings.Contains(got, "NOTIFY SIP/2.0 200") {
				t.Errorf("transferor saw %s; want %s", got, want)
			}
			deadline := time.Now().Add(5 * time.Second)
			for len(events.list()) == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if ev := events.list(); len(ev) != 1 || ev[0].Attended != (tt.replaces != "") || ev[0].KeepCapture != tt.keep {
				t.Errorf("transfer events %+v", ev)
			}
			sess.mu.Lock()
			r := sess.remote[media.Platform]
			last := r[len(r)-1].Addr.String()
			sess.mu.Unlock()
			if last != "10.4.4.4:7000" {
				t.Errorf("relay's platform remote %s, want the new agent's 10.4.4.4:7000", last)
			}
			c, _ := tg.g.Registry().BySIPCallID(callID)
			if c.Transfers != 1 || c.Platform.CallID != inv2.CallID().Value() {
				t.Errorf("registry: %d transfers, platform leg %s; want 1 and %s", c.Transfers, c.Platform.CallID, inv2.CallID().Value())
			}
			if recs := waitRecords(t, tg, audit.EventSIPCallTransferred, 1); recs[0].Outcome != audit.Success || recs[0].Reason != audit.ReasonTransferred || recs[0].Status != 200 {
				t.Errorf("sip.call_transferred %+v", recs[0])
			}
			// The customer's BYE goes to the new agent.
			hangUp(t, tg, cust, agent2, callID, toTag, 9)
			if recs := waitRecords(t, tg, audit.EventSIPCallEnded, 1); recs[0].Reason != audit.ReasonCompleted {
				t.Errorf("sip.call_ended %+v", recs[0])
			}
		})
	}
}

// TestReferRefused: REFER from the platform gets 403 under
// transfer.refer: refuse, and one without a usable Refer-To 400; the
// call goes on.
func TestReferRefused(t *testing.T) {
	tests := []struct {
		name   string
		refer  string
		header string
		want   int
	}{
		{"refuse", ReferRefuse, "Refer-To: <sip:agent2@127.0.0.1:9>\n", 403},
		{"no Refer-To", ReferAccept, "", 400},
		{"two Refer-To", ReferAccept, "Refer-To: <sip:a@127.0.0.1:9>\nRefer-To: <sip:b@127.0.0.1:9>\n", 400},
		{"tel: URI", ReferAccept, "Refer-To: <tel:+441234>\n", 400},
		{"BYE method", ReferAccept, "Refer-To: <sip:a@127.0.0.1:9;method=BYE>\n", 400},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent, cust := newPeer(t), newPeer(t)
			tg := startTestGWWith(t, "127.0.0.0/8", agent.addr(), func(c *Config) { c.Transfer.Refer = tt.refer })
			callID := fmt.Sprintf("noxfer-%d", i)
			toTag := establish(t, tg, cust, agent, callID)
			agent.send(tg.plat, agentRequest(agent, tg.lastInvite, "REFER", 3, tt.header, "", ""))
			agent.readResponse(tt.want)
			hangUp(t, tg, cust, agent, callID, toTag, 9)
		})
	}
}
