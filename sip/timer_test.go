package sip

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tonevault/tonevault/audit"
)

// shortTimers makes session timers short enough for a test: RFC 4028's
// 90 s minimum is for the YAML, which refuses less (TestSessionTimerConfig).
func shortTimers(c *Config) {
	c.SessionTimer = SessionTimerConfig{Expires: 3 * time.Second, MinSE: 2 * time.Second}
}

func TestSessionTimerConfig(t *testing.T) {
	tests := []struct {
		st      SessionTimerConfig
		wantErr string
	}{
		{SessionTimerConfig{Expires: 30 * time.Minute, MinSE: 90 * time.Second}, ""},
		{SessionTimerConfig{}, ""},
		{SessionTimerConfig{Expires: 30 * time.Minute, MinSE: 10 * time.Second}, "sip.session_timer.min_se"},
		{SessionTimerConfig{Expires: 60 * time.Second, MinSE: 90 * time.Second}, "sip.session_timer.expires"},
		{SessionTimerConfig{Expires: -time.Second}, "sip.session_timer.expires"},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		c.SessionTimer = tt.st
		err := c.Validate()
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%+v: Validate() = %v, want %q", tt.st, err, tt.wantErr)
		}
	}
}

// TestSessionTimer422: a caller asking for less than min_se gets 422
// with the Min-SE it needs.
func TestSessionTimer422(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGWWith(t, "127.0.0.0/8", agent.addr(), shortTimers)
	cust.send(tg.carrier, invite(cust, tg.carrier, "st-422", "Supported: timer\nSession-Expires: 1\n", customerSDP))
	res := cust.readResponse(422)
	if m := headerValue(res, "Min-SE"); m != "2" {
		t.Errorf("Min-SE = %q, want 2", m)
	}
}

// TestSessionExpiry: both peers said they would refresh and neither
// does: the call ends with BYE on both legs and a sip.call_ended record
// with reason session_expired.
func TestSessionExpiry(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGWWith(t, "127.0.0.0/8", agent.addr(), shortTimers)
	cust.send(tg.carrier, invite(cust, tg.carrier, "st-exp", "Supported: timer\nSession-Expires: 3;refresher=uac\n", customerSDP))
	inv := agent.readRequest(sip.INVITE)
	if se, mse := headerValue(inv, "Session-Expires"), headerValue(inv, "Min-SE"); se != "3" || mse != "2" {
		t.Errorf("INVITE to the agent: Session-Expires %q Min-SE %q, want 3 and 2", se, mse)
	}
	agent.respond(tg.plat, inv, 200, "OK", "Session-Expires: 3;refresher=uas\nRequire: timer\n", agentEarlySDP)
	agent.readRequest(sip.ACK)
	ok := cust.readResponse(200)
	if se := headerValue(ok, "Session-Expires"); se != "3;refresher=uac" || !hasTag(ok, "Require", "timer") {
		t.Errorf("2xx to the customer: Session-Expires %q Require %q, want 3;refresher=uac and timer", se, headerValue(ok, "Require"))
	}
	answered := time.Now()
	toTag := ok.To().Value()
	cust.send(tg.carrier, fmt.Sprintf("ACK sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ack-st\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: st-exp\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), toTag))
	for _, p := range []struct {
		p    *peer
		from netip.AddrPort
	}{{cust, tg.carrier}, {agent, tg.plat}} {
		bye := p.p.readRequest(sip.BYE)
		p.p.respond(p.from, bye, 200, "OK", "", "")
	}
	t.Logf("BYEs %v after the answer (interval 3 s, expiry at 2 s)", time.Since(answered).Round(10*time.Millisecond))
	recs := waitRecords(t, tg, audit.EventSIPCallEnded, 1)
	if recs[0].Reason != audit.ReasonSessionExpired || recs[0].Trunk == "" {
		t.Errorf("sip.call_ended %+v, want reason session_expired and the leg", recs[0])
	}
	if n := metricValue(tg.metrics.expiredN.WithLabelValues(recs[0].Trunk)); n != 1 {
		t.Errorf("sessions expired metric = %v", n)
	}
}

// waitRecords waits until the trail has n records of event e.
func waitRecords(t *testing.T, tg *testGW, e audit.Event, n int) []audit.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs := tg.audit.find(e)
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s records, want %d", len(recs), e, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGatewayRefreshes: peers without session timers: the gateway
// refreshes each leg itself at half the interval, with UPDATE where the
// peer allows it and a re-INVITE with the same SDP where not, and the
// call lives on past its interval.
func TestGatewayRefreshes(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGWWith(t, "127.0.0.0/8", agent.addr(), shortTimers)
	cust.send(tg.carrier, invite(cust, tg.carrier, "st-ref", "Allow: INVITE, ACK, BYE, UPDATE\n", customerSDP))
	inv := agent.readRequest(sip.INVITE)
	agent.respond(tg.plat, inv, 200, "OK", "", agentEarlySDP)
	agent.readRequest(sip.ACK)
	ok := cust.readResponse(200)
	if se := headerValue(ok, "Session-Expires"); se != "3;refresher=uas" || hasTag(ok, "Require", "timer") {
		t.Errorf("2xx to a customer without timers: Session-Expires %q Require %q, want 3;refresher=uas and no Require", se, headerValue(ok, "Require"))
	}
	toTag := ok.To().Value()
	cust.send(tg.carrier, fmt.Sprintf("ACK sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ack-ref\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: st-ref\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), toTag))
	start := time.Now()
	for round := range 2 {
		upd := cust.readRequest(sip.UPDATE)
		if se := headerValue(upd, "Session-Expires"); se != "3;refresher=uac" || len(upd.Body()) != 0 {
			t.Errorf("round %d: UPDATE to the customer: Session-Expires %q, body %q", round, se, upd.Body())
		}
		cust.respond(tg.carrier, upd, 200, "OK", "Session-Expires: 3;refresher=uac\n", "")
		reinv := agent.readRequest(sip.INVITE)
		if se := headerValue(reinv, "Session-Expires"); se != "3;refresher=uac" || !strings.Contains(string(reinv.Body()), "o=tonevault ") {
			t.Errorf("round %d: refresh re-INVITE to the agent: Session-Expires %q, body:\n%s", round, se, reinv.Body())
		}
		agent.respond(tg.plat, reinv, 200, "OK", "", agentEarlySDP)
		agent.readRequest(sip.ACK)
	}
	if live := tg.g.Registry().List(Filter{State: StateAnswered}); len(live) != 1 {
		t.Fatalf("the call did not outlive its interval: %+v", live)
	}
	t.Logf("two refresh rounds in %v", time.Since(start).Round(10*time.Millisecond))
	hangUp(t, tg, cust, agent, "st-ref", toTag, 9)
}
