package sip

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tonevault/tonevault/media"
)

const agentSDP = "v=0\no=a 1 1 IN IP4 10.2.2.2\ns=-\nc=IN IP4 10.2.2.2\nt=0 0\nm=audio 8000 RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\n"

// sdpCRLF is a test SDP with CRLF line ends.
func sdpCRLF(s string) string { return string(crlf(s)) }

// custAck is the customer's ACK of the gateway's 2xx on callID, with an
// SDP answer when sdp is not "".
func custAck(cust *peer, tg *testGW, callID, toTag string, cseq int, sdp string) string {
	ct := ""
	if sdp != "" {
		sdp = sdpCRLF(sdp)
		ct = "Content-Type: application/sdp\n"
	}
	return fmt.Sprintf("ACK sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ack-%s-%d\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: %s\nCSeq: %d ACK\nMax-Forwards: 70\n%sContent-Length: %d\n\n",
		tg.carrier, cust.addr(), callID, cseq, toTag, callID, cseq, ct, len(sdp)) + sdp
}

// remotes is where the relay was told each leg's peer wants media.
func (s *fakeSession) remotes() (carrier, platform media.Stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.remote[media.Carrier]); n > 0 {
		carrier = s.remote[media.Carrier][n-1]
	}
	if n := len(s.remote[media.Platform]); n > 0 {
		platform = s.remote[media.Platform][n-1]
	}
	return carrier, platform
}

// TestLateOffer: an INVITE without SDP (CUCM's default) goes on without
// one; the agent's offer in its 200 reaches the customer turned toward
// the relay, and the customer's answer in its ACK reaches the agent in
// the gateway's ACK, turned too.
func TestLateOffer(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGW(t, "127.0.0.0/8", agent.addr())
	cust.send(tg.carrier, invite(cust, tg.carrier, "late-1", "", ""))
	inv := agent.readRequest(sip.INVITE)
	if len(inv.Body()) != 0 || inv.ContentType() != nil {
		t.Fatalf("INVITE to the agent has a body: %q", inv.Body())
	}
	sess := tg.relay.session(0)
	agent.respond(tg.plat, inv, 200, "OK", "", agentSDP)
	ok := cust.readResponse(200)
	offer := string(ok.Body())
	if !strings.Contains(offer, fmt.Sprintf("m=audio %d ", sess.local[media.Carrier].Port())) || strings.Contains(offer, "10.2.2.2") {
		t.Fatalf("offer to the customer not turned:\n%s", offer)
	}
	// The agent's ACK waits for the customer's answer.
	cust.send(tg.carrier, custAck(cust, tg, "late-1", ok.To().Value(), 1, customerSDP))
	ack := agent.readRequest(sip.ACK)
	answer := string(ack.Body())
	if !strings.Contains(answer, fmt.Sprintf("m=audio %d ", sess.local[media.Platform].Port())) || strings.Contains(answer, "10.1.1.1") || !strings.Contains(answer, "o=tonevault ") {
		t.Fatalf("answer in the agent's ACK not the gateway's:\n%s", answer)
	}
	if ct := ack.ContentType(); ct == nil || ct.Value() != "application/sdp" {
		t.Errorf("ACK Content-Type %v", ct)
	}
	carrier, platform := sess.remotes()
	if carrier.Addr.String() != "10.1.1.1:7000" || platform.Addr.String() != "10.2.2.2:8000" {
		t.Errorf("relay remotes %v %v", carrier.Addr, platform.Addr)
	}
	if c := tg.g.Registry().List(Filter{State: StateAnswered}); len(c) != 1 {
		t.Fatalf("answered calls: %+v", c)
	}
	hangUp(t, tg, cust, agent, "late-1", ok.To().Value(), 2)
}

// TestLateOfferNoAnswer: an ACK without the answer it owes ends the call
// on both legs (the agent's 2xx is ACKed first).
func TestLateOfferNoAnswer(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGW(t, "127.0.0.0/8", agent.addr())
	cust.send(tg.carrier, invite(cust, tg.carrier, "late-2", "", ""))
	inv := agent.readRequest(sip.INVITE)
	agent.respond(tg.plat, inv, 200, "OK", "", agentSDP)
	ok := cust.readResponse(200)
	cust.send(tg.carrier, custAck(cust, tg, "late-2", ok.To().Value(), 1, ""))
	agent.readRequest(sip.ACK)
	for _, p := range []struct {
		p    *peer
		from string
	}{{cust, "carrier"}, {agent, "platform"}} {
		bye := p.p.readRequest(sip.BYE)
		p.p.respond(tg.g.Addr(p.from), bye, 200, "OK", "", "")
	}
	if c := waitEnded(t, tg); c.Outcome != "failed" {
		t.Errorf("outcome %q, want failed", c.Outcome)
	}
}

// waitEnded waits for the test gateway's one call to end.
func waitEnded(t *testing.T, tg *testGW) CallInfo {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c := tg.g.Registry().List(Filter{State: StateEnded}); len(c) == 1 {
			return c[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("call did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReinviteWithoutSDP: CUCM puts a call on hold or transfers it with
// a re-INVITE without SDP. It reaches the customer without SDP; the
// customer's offer comes back to the agent in the 200 and the agent's
// answer goes to the customer in the ACK, each turned toward the relay.
func TestReinviteWithoutSDP(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGW(t, "127.0.0.0/8", agent.addr())
	toTag := establish(t, tg, cust, agent, "cucm-1")
	inv := tg.lastInvite
	sess := tg.relay.session(0)
	agent.send(tg.plat, fmt.Sprintf("INVITE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-cucm1\nFrom: %s;tag=agent1\nTo: %s\nCall-ID: %s\nCSeq: 2 INVITE\nContact: <sip:agent@%s>\nMax-Forwards: 70\nContent-Length: 0\n\n",
		inv.Contact().Address.String(), agent.addr(), inv.To().Value(), inv.From().Value(), inv.CallID().Value(), agent.addr()))
	reinv := cust.readRequest(sip.INVITE)
	if len(reinv.Body()) != 0 {
		t.Fatalf("re-INVITE to the customer has a body:\n%s", reinv.Body())
	}
	custOffer := strings.Replace(customerSDP, "m=audio 7000", "m=audio 7010", 1)
	cust.respond(tg.carrier, reinv, 200, "OK", "", custOffer)
	ok := agent.readResponse(200)
	if b := string(ok.Body()); !strings.Contains(b, fmt.Sprintf("m=audio %d ", sess.local[media.Platform].Port())) || strings.Contains(b, "m=audio 7010") {
		t.Fatalf("offer to the agent not turned:\n%s", b)
	}
	// The customer's ACK waits for the agent's answer.
	agentAnswer := sdpCRLF(strings.Replace(agentSDP, "m=audio 8000", "m=audio 8010", 1))
	agent.send(tg.plat, fmt.Sprintf("ACK %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-cucm1ack\nFrom: %s;tag=agent1\nTo: %s\nCall-ID: %s\nCSeq: 2 ACK\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n",
		inv.Contact().Address.String(), agent.addr(), inv.To().Value(), inv.From().Value(), inv.CallID().Value(), len(agentAnswer))+agentAnswer)
	ack := cust.readRequest(sip.ACK)
	if b := string(ack.Body()); !strings.Contains(b, fmt.Sprintf("m=audio %d ", sess.local[media.Carrier].Port())) || strings.Contains(b, "m=audio 8010") {
		t.Fatalf("answer in the customer's ACK not turned:\n%s", b)
	}
	carrier, platform := sess.remotes()
	if carrier.Addr.Port() != 7010 || platform.Addr.Port() != 8010 {
		t.Errorf("relay remotes %v %v, want ports 7010 and 8010", carrier.Addr, platform.Addr)
	}
	hangUp(t, tg, cust, agent, "cucm-1", toTag, 5)
}

// TestSIPIInvite: an INVITE with SDP and ISUP (SIP-I) connects; the agent
// gets the gateway's SDP alone (sip.isup: drop), or with the ISUP part
// byte for byte (pass), but never when the caller withholds its identity
// from an untrusted platform (the IAM holds the calling number).
func TestSIPIInvite(t *testing.T) {
	tests := []struct {
		name     string
		mode     ISUPMode
		privacy  string
		wantISUP bool
	}{
		{"drop", ISUPDrop, "", false},
		{"pass", ISUPPass, "", true},
		{"pass, identity withheld", ISUPPass, "Privacy: id\n", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent, cust := newPeer(t), newPeer(t)
			tg := startTestGWWith(t, "127.0.0.0/8", agent.addr(), func(c *Config) { c.ISUP = tt.mode })
			callID := fmt.Sprintf("sipi-%d", i)
			msg := invite(cust, tg.carrier, callID, tt.privacy+"Content-Type: multipart/mixed;boundary=unique-boundary-1\nMIME-Version: 1.0\n", "")
			msg = strings.Replace(msg, "Content-Length: 0", fmt.Sprintf("Content-Length: %d", len(sipIBody)), 1)
			cust.sendRaw(tg, strings.ReplaceAll(msg, "\r\n", "\n")+"\x00"+sipIBody)
			inv := agent.readRequest(sip.INVITE)
			s, err := readSession(inv)
			if err != nil || s.sdp == nil {
				t.Fatalf("agent's INVITE body: %v\n%s", err, inv.Body())
			}
			if !strings.Contains(string(s.sdp), "o=tonevault ") {
				t.Errorf("SDP not the gateway's:\n%s", s.sdp)
			}
			if got := s.isup != nil; got != tt.wantISUP {
				t.Fatalf("ISUP part passed = %v, want %v", got, tt.wantISUP)
			}
			if tt.wantISUP && (string(s.isup.body) != isupIAM || !strings.Contains(s.isup.raw, "version=itu-t92+")) {
				t.Errorf("ISUP part %q %q, want the caller's", s.isup.raw, s.isup.body)
			}
			agent.respond(tg.plat, inv, 200, "OK", "", agentSDP)
			agent.readRequest(sip.ACK)
			ok := cust.readResponse(200)
			cust.send(tg.carrier, custAck(cust, tg, callID, ok.To().Value(), 1, ""))
			hangUp(t, tg, cust, agent, callID, ok.To().Value(), 2)
		})
	}
}

// TestPrivacy: a caller who withholds its identity (RFC 3325 Privacy:
// id) keeps it from an untrusted platform: no P-Asserted-Identity, From
// anonymous, and the registry shows anonymous. A trusted platform gets
// it, and without Privacy everyone does.
func TestPrivacy(t *testing.T) {
	const pai = "<sip:+441234567890@carrier.example>"
	tests := []struct {
		name     string
		privacy  string
		trusted  bool
		wantPAI  bool
		wantFrom string
	}{
		{"no privacy", "", false, true, "441234567890"},
		{"withheld, platform untrusted", "Privacy: id\n", false, false, "anonymous"},
		{"withheld by user privacy", "Privacy: user;id\n", false, false, "anonymous"},
		{"withheld, platform trusted", "Privacy: id\n", true, true, "441234567890"},
		{"privacy none", "Privacy: none\n", false, true, "441234567890"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent, cust := newPeer(t), newPeer(t)
			tg := startTestGWWith(t, "127.0.0.0/8", agent.addr(), func(c *Config) { c.Trunks.Platform.Trusted = tt.trusted })
			callID := fmt.Sprintf("priv-%d", i)
			cust.send(tg.carrier, invite(cust, tg.carrier, callID, "P-Asserted-Identity: "+pai+"\n"+tt.privacy, customerSDP))
			inv := agent.readRequest(sip.INVITE)
			if got := headerValue(inv, "P-Asserted-Identity") == pai; got != tt.wantPAI {
				t.Errorf("P-Asserted-Identity passed = %v, want %v (%q)", got, tt.wantPAI, headerValue(inv, "P-Asserted-Identity"))
			}
			if u := inv.From().Address.User; u != tt.wantFrom {
				t.Errorf("From user %q, want %q", u, tt.wantFrom)
			}
			if tt.wantFrom == "anonymous" && (inv.From().DisplayName != "Anonymous" || strings.Contains(inv.String(), "Jane") || strings.Contains(inv.String(), "1234567890")) {
				t.Errorf("identity left in the INVITE:\n%s", inv.String())
			}
			if tt.privacy != "" && headerValue(inv, "Privacy") == "" {
				t.Error("Privacy not carried")
			}
			calls := tg.g.Registry().List(Filter{})
			if len(calls) != 1 || calls[0].Caller != tt.wantFrom {
				t.Errorf("registry caller %+v, want %q", calls, tt.wantFrom)
			}
			agent.respond(tg.plat, inv, 486, "Busy Here", "", "")
			agent.readRequest(sip.ACK)
			cust.readResponse(486)
		})
	}
}

// sbcInvite is an INVITE as it arrives behind an SBC chain: three Vias
// and four Record-Routes (all routes lead back to the customer), whose
// 200 OK is over 1300 bytes.
func sbcInvite(cust *peer, to netip.AddrPort, callID string) string {
	var rr strings.Builder
	for i := range 4 {
		fmt.Fprintf(&rr, "Record-Route: <sip:%s;lr;ftag=cust1;did=%d.a8f2c3e1b7d94f06a1c2e3d4f5a6b7c8d9e0f1a2b3c4d5e6;nat=yes;vsf=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA--;hop=sbc-%d.edge.carrier.example.net>\n", cust.addr(), i, i)
	}
	extra := "Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK-sbc2-8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d;received=10.20.30.40;rport=5060\n" +
		"Via: SIP/2.0/UDP 10.20.30.41:5060;branch=z9hG4bK-sbc1-0f1e2d3c4b5a69788796a5b4c3d2e1f0;received=10.20.30.41;rport=5060\n" + rr.String()
	return invite(cust, to, callID, extra, customerSDP)
}

// TestLargeResponseOverUDP: the 200 OK to a caller behind an SBC chain is
// over 1300 bytes and goes back over UDP, as its INVITE came (RFC 3261
// 18.2.2); sipgo's own limit would drop it.
func TestLargeResponseOverUDP(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGW(t, "127.0.0.0/8", agent.addr())
	cust.send(tg.carrier, sbcInvite(cust, tg.carrier, "big-1"))
	inv := agent.readRequest(sip.INVITE)
	agent.respond(tg.plat, inv, 200, "OK", "", agentSDP)
	agent.readRequest(sip.ACK)
	ok := cust.readResponse(200)
	n := len(ok.String())
	if n < 1500 {
		t.Fatalf("200 OK of %d bytes: the test needs one of 1500 or more", n)
	}
	t.Logf("200 OK of %d bytes over UDP", n)
	if v, rr := len(ok.GetHeaders("Via")), len(ok.GetHeaders("Record-Route")); v != 3 || rr != 4 {
		t.Errorf("200 OK with %d Vias and %d Record-Routes, want 3 and 4", v, rr)
	}
	cust.send(tg.carrier, custAck(cust, tg, "big-1", ok.To().Value(), 1, ""))
	hangUp(t, tg, cust, agent, "big-1", ok.To().Value(), 2)
}

// tcpPeer accepts TCP connections on a peer's UDP port number and
// reads SIP messages from them.
type tcpPeer struct {
	t    *testing.T
	l    net.Listener
	msgs chan tcpMsg
}

type tcpMsg struct {
	m    sip.Message
	conn net.Conn
}

// listenTCP listens on TCP at p's UDP port; false when that port is
// taken on TCP.
func listenTCP(t *testing.T, p *peer) (*tcpPeer, bool) {
	l, err := net.Listen("tcp", p.addr())
	if err != nil {
		return nil, false
	}
	tp := &tcpPeer{t: t, l: l, msgs: make(chan tcpMsg, 8)}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go tp.read(c)
		}
	}()
	return tp, true
}

// read parses the SIP messages of a stream: head to the blank line, then
// Content-Length bytes.
func (tp *tcpPeer) read(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		tr := textproto.NewReader(r)
		first, err := tr.ReadLine()
		if err != nil {
			return
		}
		if first == "" {
			continue // keep-alive CRLF
		}
		head := []string{first}
		n := 0
		for {
			line, err := tr.ReadLine()
			if err != nil {
				return
			}
			if line == "" {
				break
			}
			head = append(head, line)
			if k, v, ok := strings.Cut(line, ":"); ok && (strings.EqualFold(strings.TrimSpace(k), "Content-Length") || strings.TrimSpace(k) == "l") {
				n, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		m, err := sip.ParseMessage(append([]byte(strings.Join(head, "\r\n")+"\r\n\r\n"), body...))
		if err != nil {
			tp.t.Errorf("TCP message unreadable: %v", err)
			return
		}
		tp.msgs <- tcpMsg{m, c}
	}
}

func (tp *tcpPeer) next() (tcpMsg, bool) {
	select {
	case m := <-tp.msgs:
		return m, true
	case <-time.After(10 * time.Second):
		return tcpMsg{}, false
	}
}

// TestLargeRequestTransport: an INVITE over 1300 bytes goes to a peer
// over TCP when the trunk has TCP and the peer takes a connection (RFC
// 3261 18.1.1), its Via saying TCP; a peer with nothing on TCP gets it
// over UDP. Either way the call completes.
func TestLargeRequestTransport(t *testing.T) {
	for _, withTCP := range []bool{true, false} {
		t.Run(fmt.Sprintf("peer TCP %v", withTCP), func(t *testing.T) {
			var agent *peer
			var tp *tcpPeer
			for range 20 {
				agent = newPeer(t)
				if !withTCP {
					break
				}
				var ok bool
				if tp, ok = listenTCP(t, agent); ok {
					break
				}
			}
			if withTCP && tp == nil {
				t.Fatal("no port free on both UDP and TCP")
			}
			cust := newPeer(t)
			tg := startTestGWWith(t, "127.0.0.0/8", agent.addr(), func(c *Config) {
				c.Trunks.Platform.Transports = []string{"udp", "tcp"}
			})
			// A long correlation header makes the INVITE the gateway sends
			// larger than 1300 bytes.
			long := "X-Interaction-ID: ix-" + strings.Repeat("0123456789abcdef", 64) + "\n"
			cust.send(tg.carrier, invite(cust, tg.carrier, "large-1", long, customerSDP))
			var inv *sip.Request
			if withTCP {
				m, ok := tp.next()
				if !ok {
					t.Fatal("no INVITE over TCP")
				}
				inv = m.m.(*sip.Request)
				if n := len(inv.String()); n <= maxUDPRequest {
					t.Fatalf("INVITE of %d bytes: the test needs one over %d", n, maxUDPRequest)
				}
				if tpv := inv.Via().Transport; tpv != "TCP" {
					t.Errorf("Via transport %s, want TCP", tpv)
				}
				res := sip.NewResponseFromRequest(inv, 200, "OK", []byte(sdpCRLF(agentSDP)))
				res.To().Params.Add("tag", "agent1")
				res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "agent", Host: "127.0.0.1", Port: agent.conn.LocalAddr().(*net.UDPAddr).Port}})
				ct := sip.ContentTypeHeader("application/sdp")
				res.AppendHeader(&ct)
				if _, err := m.conn.Write([]byte(res.String())); err != nil {
					t.Fatal(err)
				}
			} else {
				inv = agent.readRequest(sip.INVITE)
				if tpv := inv.Via().Transport; tpv != "UDP" {
					t.Errorf("Via transport %s, want UDP", tpv)
				}
				agent.respond(tg.plat, inv, 200, "OK", "", agentSDP)
			}
			// The dialog itself stays on UDP: the ACK and the BYE come there.
			agent.readRequest(sip.ACK)
			ok := cust.readResponse(200)
			cust.send(tg.carrier, custAck(cust, tg, "large-1", ok.To().Value(), 1, ""))
			hangUp(t, tg, cust, agent, "large-1", ok.To().Value(), 2)
		})
	}
}

// TestRFC4475Handling: a CSeq naming another method gets 400 (RFC 4475
// 3.1.2.8), and tags written with whitespace around "=" (3.1.1.1) are
// the dialog's tags: the BYE ends the call instead of getting 481.
func TestRFC4475Handling(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGW(t, "127.0.0.0/8", agent.addr())
	cust.send(tg.carrier, fmt.Sprintf("OPTIONS sip:x@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-mm1\nFrom: <sip:x@y>;tag=1\nTo: <sip:x@%s>\nCall-ID: mismatch-1\nCSeq: 1 INVITE\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), tg.carrier))
	cust.readResponse(400)
	if len(tg.g.Registry().List(Filter{})) != 0 {
		t.Fatal("a call was started")
	}

	toTag := establish(t, tg, cust, agent, "ws-1")
	tag, _ := cust.lastTo(toTag)
	cust.send(tg.carrier, fmt.Sprintf("BYE sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ws1bye\nFrom: <sip:441234567890@example.com> ;\n  tag = cust1\nTo: <sip:4420700000@%s> ; TAG =  %s\nCall-ID: ws-1\nCSeq: 5 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), tg.carrier, tag))
	cust.readResponse(200)
	bye := agent.readRequest(sip.BYE)
	agent.respond(tg.plat, bye, 200, "OK", "", "")
	if c := waitEnded(t, tg); c.Outcome != "completed" {
		t.Errorf("outcome %q", c.Outcome)
	}
}

// lastTo returns the tag of a To header value.
func (p *peer) lastTo(to string) (string, bool) {
	_, tag, ok := strings.Cut(to, "tag=")
	tag, _, _ = strings.Cut(tag, ";")
	return tag, ok
}
