package sip

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tonevault/tonevault/audit"
)

// setFault installs f as the handlers' test hook until the test ends.
func setFault(t *testing.T, f func(where string, m sip.RequestMethod, sipCallID string)) {
	t.Helper()
	testFault.Store(&f)
	t.Cleanup(func() { testFault.Store(nil) })
}

// waitOutcome waits until the registry has the call with gateway id id
// ended, and returns its outcome.
func waitOutcome(t *testing.T, tg *testGW, id string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, ok := tg.g.Registry().Get(id); ok && c.State == StateEnded {
			return c.Outcome
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("call %s did not end", id)
	return ""
}

// callIDOf is the gateway id of the call whose carrier leg is sipCallID.
func callIDOf(t *testing.T, tg *testGW, sipCallID string) string {
	t.Helper()
	c, ok := tg.g.Registry().BySIPCallID(sipCallID)
	if !ok {
		t.Fatalf("no call for %s", sipCallID)
	}
	return c.ID
}

// checkFailed checks the trail of a call a fault ended: call.failed,
// then sip.call_ended, both with reason.
func checkFailed(t *testing.T, tg *testGW, id string, reason audit.Reason) {
	t.Helper()
	var got []string
	tg.audit.mu.Lock()
	for _, r := range tg.audit.recs {
		if r.CallID == id && (r.Event == audit.EventCallFailed || r.Event == audit.EventSIPCallEnded) {
			got = append(got, fmt.Sprintf("%s/%s/%s", r.Event, r.Outcome, r.Reason))
		}
	}
	tg.audit.mu.Unlock()
	want := []string{"call.failed/failure/" + string(reason), "sip.call_ended/failure/" + string(reason)}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("records of %s: %v, want %v", id, got, want)
	}
}

func faultMetric(t *testing.T, tg *testGW, where string) float64 {
	t.Helper()
	m, err := tg.metrics.faults.GetMetricWithLabelValues(where)
	if err != nil {
		t.Fatal(err)
	}
	return metricValue(m.(prometheus.Metric))
}

// TestHandlerPanicEndsOneCall: a panic while handling a request in one
// call's dialog answers it 500, ends that call with BYE on both legs
// and call.failed (sip_fault), and nothing else: the other call goes on
// and hangs up normally, and a new call is taken.
func TestHandlerPanicEndsOneCall(t *testing.T) {
	agent, cust1, cust2 := newPeer(t), newPeer(t), newPeer(t)
	tg := startTestGW(t, "127.0.0.0/8", agent.addr())
	to1 := establish(t, tg, cust1, agent, "panic-1")
	leg1 := tg.lastInvite.CallID().Value() // call 1's platform leg
	to2 := establish(t, tg, cust2, agent, "panic-2")
	id1, id2 := callIDOf(t, tg, "panic-1"), callIDOf(t, tg, "panic-2")
	setFault(t, func(where string, m sip.RequestMethod, sipCallID string) {
		if where == "request" && m == sip.INFO && sipCallID == "panic-1" {
			panic("test fault in the INFO handler")
		}
	})

	info := func(cust *peer, callID, toTag string, cseq int) {
		d := "Signal=5\r\nDuration=160\r\n"
		cust.send(tg.carrier, fmt.Sprintf("INFO sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-pinfo%d\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: %s\nCSeq: %d INFO\nMax-Forwards: 70\nContent-Type: application/dtmf-relay\nContent-Length: %d\n\n", tg.carrier, cust.addr(), cseq, toTag, callID, cseq, len(d))+d)
	}
	info(cust1, "panic-1", to1, 2)
	cust1.readResponse(500)
	bye := cust1.readRequest(sip.BYE)
	cust1.respond(tg.carrier, bye, 200, "OK", "", "")
	bye = agent.readRequest(sip.BYE)
	if bye.CallID().Value() != leg1 {
		t.Fatalf("agent got a BYE for %s, want call 1's leg %s", bye.CallID().Value(), leg1)
	}
	agent.respond(tg.plat, bye, 200, "OK", "", "")
	if got := waitOutcome(t, tg, id1); got != string(audit.ReasonSIPFault) {
		t.Errorf("call 1 outcome %q, want sip_fault", got)
	}
	checkFailed(t, tg, id1, audit.ReasonSIPFault)
	if !tg.relay.session(0).isClosed() {
		t.Error("call 1's media session not closed")
	}
	if n := faultMetric(t, tg, "handler"); n != 1 {
		t.Errorf("tonevault_sip_faults_total{where=handler} = %v, want 1", n)
	}

	// Call 2 is untouched: its INFO is taken, and it ends by the
	// customer's BYE.
	if c, _ := tg.g.Registry().Get(id2); c.State != StateAnswered {
		t.Fatalf("call 2 is %s", c.State)
	}
	info(cust2, "panic-2", to2, 2)
	cust2.readResponse(200)
	hangUp(t, tg, cust2, agent, "panic-2", to2, 3)
	if got := waitOutcome(t, tg, id2); got != string(audit.ReasonCompleted) {
		t.Errorf("call 2 outcome %q, want completed", got)
	}
	if recs := tg.audit.find(audit.EventCallFailed); len(recs) != 1 {
		t.Errorf("%d call.failed records, want call 1's only", len(recs))
	}
	// And the gateway takes calls.
	cust3 := newPeer(t)
	to3 := establish(t, tg, cust3, agent, "panic-3")
	hangUp(t, tg, cust3, agent, "panic-3", to3, 2)
}

// TestNewRequestPanic: a panic handling a request that belongs to no
// call (a new call's INVITE, before any call exists) answers 500 and
// leaves nothing behind; the next INVITE is a call.
func TestNewRequestPanic(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGW(t, "127.0.0.0/8", agent.addr())
	setFault(t, func(where string, m sip.RequestMethod, sipCallID string) {
		if where == "request" && sipCallID == "doomed-1" {
			panic("test fault before the call exists")
		}
	})
	cust.send(tg.carrier, invite(cust, tg.carrier, "doomed-1", "", customerSDP))
	cust.readResponse(500)
	if calls := tg.g.Registry().List(Filter{}); len(calls) != 0 {
		t.Errorf("calls after the panic: %+v", calls)
	}
	if tg.relay.session(0) != nil {
		t.Error("a media session was opened")
	}
	to := establish(t, tg, cust, agent, "fine-1")
	hangUp(t, tg, cust, agent, "fine-1", to, 2)
}

// TestInvitePanic: a panic while the INVITE is ringing (on the callee's
// 180) answers the caller 500, cancels the callee's INVITE, frees the
// media session and ends the call with call.failed.
func TestInvitePanic(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGW(t, "127.0.0.0/8", agent.addr())
	setFault(t, func(where string, m sip.RequestMethod, sipCallID string) {
		if where == "invite" && sipCallID == "ring-1" {
			panic("test fault in the INVITE's response handling")
		}
	})
	cust.send(tg.carrier, invite(cust, tg.carrier, "ring-1", "", customerSDP))
	inv := agent.readRequest(sip.INVITE)
	agent.respond(tg.plat, inv, 180, "Ringing", "", "")
	cust.readResponse(500)
	cancel := agent.readRequest(sip.CANCEL)
	if cancel.CallID().Value() != inv.CallID().Value() {
		t.Errorf("CANCEL for %s, want the INVITE's %s", cancel.CallID().Value(), inv.CallID().Value())
	}
	agent.respond(tg.plat, cancel, 200, "OK", "", "")
	id := callIDOf(t, tg, "ring-1")
	if got := waitOutcome(t, tg, id); got != string(audit.ReasonSIPFault) {
		t.Errorf("outcome %q, want sip_fault", got)
	}
	checkFailed(t, tg, id, audit.ReasonSIPFault)
	if !tg.relay.session(0).isClosed() {
		t.Error("media session not closed")
	}
	if n := faultMetric(t, tg, "invite"); n != 1 {
		t.Errorf("tonevault_sip_faults_total{where=invite} = %v, want 1", n)
	}
}

// TestCallGoroutinePanic: a panic in one of the call's own goroutines
// (here the one that watches its media) ends the call with BYE on both
// legs and call.failed.
func TestCallGoroutinePanic(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGW(t, "127.0.0.0/8", agent.addr())
	establish(t, tg, cust, agent, "watch-1")
	id := callIDOf(t, tg, "watch-1")
	setFault(t, func(where string, _ sip.RequestMethod, callID string) {
		if where == "watch" && callID == id {
			panic("test fault in the call's watcher")
		}
	})
	s := tg.relay.session(0)
	s.err = nil
	close(s.done)
	for _, p := range []struct {
		p    *peer
		from netip.AddrPort
	}{{cust, tg.carrier}, {agent, tg.plat}} {
		bye := p.p.readRequest(sip.BYE)
		p.p.respond(p.from, bye, 200, "OK", "", "")
	}
	if got := waitOutcome(t, tg, id); got != string(audit.ReasonSIPFault) {
		t.Errorf("outcome %q, want sip_fault", got)
	}
	checkFailed(t, tg, id, audit.ReasonSIPFault)
	if n := faultMetric(t, tg, "watch"); n != 1 {
		t.Errorf("tonevault_sip_faults_total{where=watch} = %v, want 1", n)
	}
}
