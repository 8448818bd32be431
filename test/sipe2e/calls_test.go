package sipe2e

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/sip"
)

// TestCalls runs one call per scenario pair and checks how the gateway
// recorded it.
func TestCalls(t *testing.T) {
	type failure struct {
		agentCode   int
		agentReason string
		wantCode    int // what the customer must get
	}
	tests := []struct {
		name        string
		uac, uas    string
		transport   string
		agentTCP    bool
		reverse     bool
		fail        *failure
		wantOutcome string
		wantAnswer  bool
	}{
		{name: "basic call, customer hangs up", uac: "uac_basic.xml", uas: "uas_basic.xml", wantOutcome: "completed", wantAnswer: true},
		{name: "basic call over TCP", uac: "uac_basic.xml", uas: "uas_basic.xml", transport: "t1", wantOutcome: "completed", wantAnswer: true},
		{name: "agent over TCP", uac: "uac_basic.xml", uas: "uas_basic.xml", agentTCP: true, wantOutcome: "completed", wantAnswer: true},
		{name: "call from the platform side", uac: "uac_basic.xml", uas: "uas_basic.xml", reverse: true, wantOutcome: "completed", wantAnswer: true},
		{name: "agent hangs up", uac: "uac_bye_in.xml", uas: "uas_bye.xml", wantOutcome: "completed", wantAnswer: true},
		{name: "customer cancels while ringing", uac: "uac_cancel.xml", uas: "uas_cancelled.xml", wantOutcome: "cancelled"},
		{name: "hold and resume", uac: "uac_hold.xml", uas: "uas_hold.xml", wantOutcome: "completed", wantAnswer: true},
		{name: "183 early media", uac: "uac_early.xml", uas: "uas_early.xml", wantOutcome: "completed", wantAnswer: true},
		{name: "busy", uac: "uac_failure.xml", uas: "uas_failure.xml", fail: &failure{486, "Busy Here", 486}, wantOutcome: "busy"},
		{name: "declined", uac: "uac_failure.xml", uas: "uas_failure.xml", fail: &failure{603, "Decline", 603}, wantOutcome: "declined"},
		{name: "not found", uac: "uac_failure.xml", uas: "uas_failure.xml", fail: &failure{404, "Not Found", 404}, wantOutcome: "not_found"},
		{name: "server error", uac: "uac_failure.xml", uas: "uas_failure.xml", fail: &failure{503, "Service Unavailable", 503}, wantOutcome: "failed"},
		{name: "redirect is not followed", uac: "uac_failure.xml", uas: "uas_failure.xml", fail: &failure{302, "Moved Temporarily", 480}, wantOutcome: "rejected"},
		{name: "challenge is not passed on", uac: "uac_failure.xml", uas: "uas_failure.xml", fail: &failure{407, "Proxy Authentication Required", 403}, wantOutcome: "rejected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			corr := "ix-" + strings.ReplaceAll(tt.name, " ", "-")
			spec := callSpec{uac: tt.uac, uas: tt.uas, transport: tt.transport, agentTCP: tt.agentTCP, reverse: tt.reverse, corr: corr}
			if tt.fail != nil {
				spec.subst = map[string]string{
					`response="[code]"`: `response="` + strconv.Itoa(tt.fail.wantCode) + `"`,
					"[code] [reason]":   strconv.Itoa(tt.fail.agentCode) + " " + tt.fail.agentReason,
				}
			}
			res := runCall(t, spec)
			calls := waitEnded(t, res.gw, 1)
			c := calls[0]
			if c.Outcome != tt.wantOutcome {
				t.Errorf("outcome = %q, want %q", c.Outcome, tt.wantOutcome)
			}
			if got := !c.Answer.IsZero(); got != tt.wantAnswer {
				t.Errorf("answered = %v, want %v", got, tt.wantAnswer)
			}
			if c.Correlation["X-Interaction-ID"] != corr {
				t.Errorf("correlation = %v, want X-Interaction-ID %s", c.Correlation, corr)
			}
			wantInbound := "carrier"
			if tt.reverse {
				wantInbound = "platform"
			}
			if c.Caller != "441234567890" || c.Inbound != wantInbound || c.Callee != "4420700000" {
				t.Errorf("caller %q callee %q inbound %q", c.Caller, c.Callee, c.Inbound)
			}
			if c.Carrier.CallID == "" || c.Platform.CallID == "" || c.Carrier.CallID == c.Platform.CallID {
				t.Errorf("leg Call-IDs %q %q: want two different ones", c.Carrier.CallID, c.Platform.CallID)
			}
			if byCorr, ok := res.gw.reg.ByCorrelation(corr); !ok || byCorr.ID != c.ID {
				t.Errorf("ByCorrelation(%s) = %v %v", corr, byCorr.ID, ok)
			}
			for _, sid := range []string{c.Carrier.CallID, c.Platform.CallID} {
				if got, ok := res.gw.reg.BySIPCallID(sid); !ok || got.ID != c.ID {
					t.Errorf("BySIPCallID(%s) = %v %v", sid, got.ID, ok)
				}
			}
			ev := res.gw.audit.events()
			if !slices.Contains(ev, audit.EventSIPCallStarted) || !slices.Contains(ev, audit.EventSIPCallEnded) {
				t.Errorf("audit events = %v", ev)
			}
			if live := res.gw.reg.List(sip.Filter{State: sip.StateAnswered}); len(live) != 0 {
				t.Errorf("calls still answered: %+v", live)
			}
		})
	}
}
