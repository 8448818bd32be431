package sip

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/tonevault/tonevault/media"
)

// respondAs is respond with the peer's To tag tag: another early dialog
// of the same INVITE, as a forking proxy's callees give.
func (p *peer) respondAs(tag string, req *sip.Request, code int, reason, body string) {
	p.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\n", code, reason)
	for _, h := range req.GetHeaders("Via") {
		fmt.Fprintf(&b, "Via: %s\n", h.Value())
	}
	fmt.Fprintf(&b, "From: %s\nTo: %s;tag=%s\nCall-ID: %s\nCSeq: %s\nContact: <sip:%s@%s>\n", req.From().Value(), req.To().Value(), tag, req.CallID().Value(), req.CSeq().Value(), tag, p.addr())
	if body != "" {
		body = strings.ReplaceAll(strings.TrimLeft(body, "\n"), "\n", "\r\n")
		fmt.Fprintf(&b, "Content-Type: application/sdp\nContent-Length: %d\n\n", len(body))
	} else {
		b.WriteString("Content-Length: 0\n\n")
	}
	p.send(p.gw, b.String()+body)
}

// TestForking: two early dialogs answer the gateway's INVITE (a forking
// proxy), each with early media; the relay follows the latest 18x. The
// first 2xx (from the first dialog, its answer in its 18x) wins: the
// relay takes that dialog's media, the customer is answered, and the
// other dialog's later 2xx gets ACK and BYE.
func TestForking(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGW(t, "127.0.0.0/8", agent.addr())
	agent.gw = tg.plat
	cust.send(tg.carrier, invite(cust, tg.carrier, "fork-1", "", customerSDP))
	inv := agent.readRequest(sip.INVITE)
	sdp1 := "v=0\no=a 1 1 IN IP4 10.2.2.2\ns=-\nc=IN IP4 10.2.2.2\nt=0 0\nm=audio 8000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
	sdp2 := "v=0\no=b 1 1 IN IP4 10.3.3.3\ns=-\nc=IN IP4 10.3.3.3\nt=0 0\nm=audio 9000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
	sess := tg.relay.session(0)
	lastPlatform := func() string {
		sess.mu.Lock()
		defer sess.mu.Unlock()
		r := sess.remote[media.Platform]
		return r[len(r)-1].Addr.String()
	}
	agent.respondAs("f1", inv, 183, "Session Progress", sdp1)
	cust.readResponse(183)
	if got := lastPlatform(); got != "10.2.2.2:8000" {
		t.Errorf("early media from %s, want the first dialog's 10.2.2.2:8000", got)
	}
	agent.respondAs("f2", inv, 183, "Session Progress", sdp2)
	cust.readResponse(183)
	if got := lastPlatform(); got != "10.3.3.3:9000" {
		t.Errorf("early media from %s, want the second dialog's 10.3.3.3:9000", got)
	}
	agent.respondAs("f1", inv, 200, "OK", "")
	ack := agent.readRequest(sip.ACK)
	if tag, _ := ack.To().Params.Get("tag"); tag != "f1" {
		t.Errorf("ACK to tag %q, want f1", tag)
	}
	ok := cust.readResponse(200)
	if !strings.Contains(string(ok.Body()), "m=audio") {
		t.Error("2xx to the customer without SDP")
	}
	if got := lastPlatform(); got != "10.2.2.2:8000" {
		t.Errorf("answered call's media from %s, want the winning dialog's 10.2.2.2:8000", got)
	}
	agent.respondAs("f2", inv, 200, "OK", sdp2)
	for _, m := range []sip.RequestMethod{sip.ACK, sip.BYE} {
		r := agent.readRequest(m)
		if tag, _ := r.To().Params.Get("tag"); tag != "f2" {
			t.Errorf("%s to tag %q, want the losing dialog f2", m, tag)
		}
		if m == sip.BYE {
			agent.respond(tg.plat, r, 200, "OK", "", "")
		}
	}
	if got := lastPlatform(); got != "10.2.2.2:8000" {
		t.Errorf("after the losing 2xx, media from %s, want 10.2.2.2:8000", got)
	}
	toTag := ok.To().Value()
	cust.send(tg.carrier, fmt.Sprintf("ACK sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ack-fork\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: fork-1\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), toTag))
	cust.send(tg.carrier, fmt.Sprintf("BYE sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-bye-fork\nFrom: <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: fork-1\nCSeq: 9 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), toTag))
	cust.readResponse(200)
	bye := agent.readRequest(sip.BYE)
	if tag, _ := bye.To().Params.Get("tag"); tag != "f1" {
		t.Errorf("the call's BYE to tag %q, want f1", tag)
	}
	agent.respond(tg.plat, bye, 200, "OK", "", "")
}
