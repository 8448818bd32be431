package sip

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// inDialog is an in-dialog request of the customer's on call callID
// (gateway To tag toTag): extra headers, and a body of type ct.
func inDialogRequest(cust *peer, tg *testGW, callID, toTag, method string, cseq int, extra, ct, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s-%d\nFrom: <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: %s\nCSeq: %d %s\nMax-Forwards: 70\n%s",
		method, tg.carrier, cust.addr(), strings.ToLower(method), cseq, toTag, callID, cseq, method, extra)
	if ct != "" {
		fmt.Fprintf(&b, "Content-Type: %s\n", ct)
	}
	// The body goes as it is (binary ones too); send turns only the
	// header's line ends into CRLF.
	fmt.Fprintf(&b, "Content-Length: %d\n\n", len(body))
	return b.String() + "\x00" + body
}

// sendRaw sends a message whose head has LF line ends and whose body,
// after a NUL, goes byte for byte.
func (p *peer) sendRaw(to *testGW, msg string) {
	p.t.Helper()
	head, body, _ := strings.Cut(msg, "\x00")
	head = strings.ReplaceAll(head, "\n", "\r\n")
	if _, err := p.conn.WriteToUDPAddrPort([]byte(head+body), to.carrier); err != nil {
		p.t.Fatal(err)
	}
}

// TestCarrierAllowlist: no in-dialog request from the carrier but BYE,
// re-INVITE and UPDATE reaches the agent. Key presses of every kind (INFO
// and NOTIFY, every body type, multipart) are answered by the gateway and
// each press is one digit for the relay; everything else is answered and
// counted. The agent's next message after all of them is the BYE of the
// hang-up: anything forwarded would come first and fail the test, and the
// customer could not get its answer before the agent answered it.
func TestCarrierAllowlist(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGW(t, "127.0.0.0/8", agent.addr())
	toTag := establish(t, tg, cust, agent, "allow-1")
	sess := tg.relay.session(0)
	kpml := func(digits string) string {
		return `<?xml version="1.0" encoding="UTF-8"?><kpml-response xmlns="urn:ietf:params:xml:ns:kpml-response" version="1.0" code="200" text="OK" digits="` + digits + `" tag="dtmf"/>`
	}
	mixed := "--b1\r\nContent-Type: text/plain\r\n\r\nkey\r\n--b1\r\nContent-Type: application/dtmf-relay\r\n\r\nSignal=5\r\nDuration=100\r\n--b1--\r\n"
	tests := []struct {
		name, method, extra, ct, body string
		code                          int
		digits                        string  // added to the relay's digits
		reason                        refusal // counted refusal, "" for none
	}{
		{"INFO dtmf-relay", "INFO", "", "application/dtmf-relay", "Signal=1\r\nDuration=160\r\n", 200, "1", ""},
		{"INFO dtmf", "INFO", "", "application/dtmf", "2", 200, "2", ""},
		{"INFO Nortel", "INFO", "", "application/vnd.nortelnetworks.digits", "d=3\r\n", 200, "3", ""},
		{"INFO telephone-event", "INFO", "", "audio/telephone-event", "\x04\x8a\x03\x20", 200, "4", ""},
		{"INFO multipart", "INFO", "", "multipart/mixed;boundary=b1", mixed, 200, "5", ""},
		{"Cisco NOTIFY start", "NOTIFY", "Event: telephone-event\nSubscription-State: active\n", "audio/telephone-event", "\x06\x00\x07\xd0", 200, "6", ""},
		{"Cisco NOTIFY end of the same press", "NOTIFY", "Event: telephone-event\nSubscription-State: active\n", "audio/telephone-event", "\x06\x80\x00\x78", 200, "", ""},
		{"Cisco NOTIFY without Content-Type", "NOTIFY", "Event: telephone-event;rate=1000\n", "", "\x07\x80\x00\x64", 200, "7", ""},
		{"KPML NOTIFY", "NOTIFY", "Event: kpml;id=1\nSubscription-State: active\n", "application/kpml-response+xml", kpml("89"), 200, "89", ""},
		{"KPML NOTIFY, compact Event", "NOTIFY", "o: KPML\n", "application/kpml-response+xml", kpml("#"), 200, "#", ""},
		{"KPML NOTIFY, state only", "NOTIFY", "Event: kpml\nSubscription-State: active\n", "", "", 200, "", refusedNoBody},
		{"INFO keep-alive", "INFO", "", "", "", 200, "", refusedNoBody},
		{"INFO text", "INFO", "", "text/plain", "pressed 9", 415, "", refusedMediaType},
		{"INFO multipart without a key", "INFO", "", "multipart/mixed;boundary=b1", "--b1\r\nContent-Type: text/plain\r\n\r\n9\r\n--b1--\r\n", 415, "", refusedMediaType},
		{"INFO of a package", "INFO", "Info-Package: foo\n", "application/foo", "9", 469, "", refusedInfoPackage},
		{"INFO no key", "INFO", "", "application/dtmf-relay", "Signal=Z\r\n", 400, "", refusedBadBody},
		{"INFO unreadable multipart", "INFO", "", "multipart/mixed", mixed, 400, "", refusedBadBody},
		{"NOTIFY dialog event", "NOTIFY", "Event: dialog\nSubscription-State: active\n", "application/dialog-info+xml", "<dialog-info/>", 489, "", refusedEvent},
		{"NOTIFY without Event", "NOTIFY", "", "text/plain", "9", 489, "", refusedEvent},
		{"MESSAGE", "MESSAGE", "", "text/plain", "card 9", 405, "", refusedMethod},
		// The gateway's own (RFC 3262): answered, never forwarded; it
		// acknowledges no reliable 18x here.
		{"PRACK", "PRACK", "RAck: 1 1 INVITE\n", "", "", 481, "", ""},
		{"REFER", "REFER", "Refer-To: <sip:elsewhere@example.com>\n", "", "", 403, "", refusedMethod},
		{"SUBSCRIBE", "SUBSCRIBE", "Event: kpml\nExpires: 60\n", "", "", 405, "", refusedMethod},
		{"PUBLISH", "PUBLISH", "Event: presence\n", "", "", 405, "", refusedMethod},
		{"unknown method", "FOO", "", "text/plain", "9", 501, "", refusedMethod},
	}
	seen := map[refusal]bool{}
	want := ""
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before float64
			if tt.reason != "" {
				seen[tt.reason] = true
				before = metricValue(tg.metrics.stopped.WithLabelValues(metricMethod(sip.RequestMethod(tt.method)), string(tt.reason)))
			}
			cust.sendRaw(tg, inDialogRequest(cust, tg, "allow-1", toTag, tt.method, 10+i, tt.extra, tt.ct, tt.body))
			res := cust.readResponse(tt.code)
			if tag, _ := res.To().Params.Get("tag"); tag == "" {
				t.Error("answer without To tag")
			}
			switch tt.code {
			case 405, 501:
				if a := headerValue(res, "Allow"); a != allowCarrier {
					t.Errorf("Allow %q, want the carrier's one: %q", a, allowCarrier)
				}
			case 415:
				if a := headerValue(res, "Accept"); !strings.Contains(a, "application/dtmf-relay") {
					t.Errorf("Accept %q", a)
				}
			case 489:
				if a := headerValue(res, "Allow-Events"); !strings.Contains(a, "kpml") {
					t.Errorf("Allow-Events %q", a)
				}
			}
			want += tt.digits
			sess.mu.Lock()
			got := string(sess.digits)
			sess.mu.Unlock()
			if got != want {
				t.Errorf("relay digits %q, want %q", got, want)
			}
			if tt.reason != "" {
				after := metricValue(tg.metrics.stopped.WithLabelValues(metricMethod(sip.RequestMethod(tt.method)), string(tt.reason)))
				if after != before+1 {
					t.Errorf("refused{%s,%s} went %v to %v, want +1", tt.method, tt.reason, before, after)
				}
			}
		})
	}
	for _, r := range refusalReasons {
		if !seen[r] {
			t.Errorf("reason %q not exercised", r)
		}
	}
	if n := metricValue(tg.metrics.digits.WithLabelValues("INFO")) + metricValue(tg.metrics.digits.WithLabelValues("NOTIFY")); n != float64(len(want)) {
		t.Errorf("signalled digits metric %v, want %d", n, len(want))
	}
	// Nothing of it reached the agent: its next message is the BYE.
	hangUp(t, tg, cust, agent, "allow-1", toTag, 99)
}

// TestForwardDetector shows that the detector TestCarrierAllowlist relies
// on finds a forwarded request: an INFO from the agent is forwarded to
// the customer (the platform side is not filtered), digit and all, and
// is the customer's next message.
func TestForwardDetector(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGW(t, "127.0.0.0/8", agent.addr())
	toTag := establish(t, tg, cust, agent, "detect-1")
	inv := tg.lastInvite
	body := "Signal=1\r\nDuration=160\r\n"
	agent.send(tg.plat, fmt.Sprintf("INFO %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ainfo\nFrom: %s;tag=agent1\nTo: %s\nCall-ID: %s\nCSeq: 5 INFO\nMax-Forwards: 70\nContent-Type: application/dtmf-relay\nContent-Length: %d\n\n",
		inv.Contact().Address.String(), agent.addr(), inv.To().Value(), inv.From().Value(), inv.CallID().Value(), len(body))+body)
	fwd := cust.readRequest(sip.INFO)
	if !strings.Contains(string(fwd.Body()), "Signal=1") {
		t.Fatalf("forwarded INFO without its digit: %q", fwd.Body())
	}
	cust.respond(tg.carrier, fwd, 200, "OK", "", "")
	agent.readResponse(200)
	hangUp(t, tg, cust, agent, "detect-1", toTag, 9)
}
