package sip

import (
	"sync/atomic"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/internal/panics"
)

// Faults (DESIGN.md invariant 8). A panic in a SIP handler or in one of
// a call's goroutines ends that call and no other: the request gets 500
// when it has no final answer yet, the call gets BYE on both legs (or, not
// answered yet, the caller an error and the callee a CANCEL), and the
// trail a call.failed record (reason sip_fault) before its
// sip.call_ended. The gateway keeps serving. A fault of the call's media
// (media.ErrFault) ends it the same way, from watch.
//
// A panic while the call's own lock is held would leave it held, and the
// recovery would wait for it: the sipgo goroutine stays blocked, and the
// process and the other calls go on.

// testFault, when set, is called where requests enter the gateway
// (where "request", after the allow list) and on each response to a
// call's INVITE ("invite"), with the method and SIP Call-ID: a panic in
// it is one in the handler. Only tests set it; nothing reaches it from
// configuration or the network.
var testFault atomic.Pointer[func(where string, m sip.RequestMethod, sipCallID string)]

func runTestFault(where string, m sip.RequestMethod, sipCallID string) {
	if h := testFault.Load(); h != nil {
		(*h)(where, m, sipCallID)
	}
}

// fault logs a recovered panic and counts it.
func (g *Gateway) fault(where, callID string, v any) {
	g.metrics.fault(where)
	g.log.Error("sip: panic; the call it belongs to is ended, the others go on",
		append([]zap.Field{zap.String("where", where), zap.String("call", callID)}, panics.Fields(v)...)...)
}

// recoverRequest, deferred in every sipgo handler, answers a request
// whose handling panicked with 500 and fails the call the request is in,
// if it is in one (its Call-ID and both tags match a leg's dialog).
func (g *Gateway) recoverRequest(t *trunk, req *sip.Request, tx sip.ServerTransaction) {
	v := recover()
	if v == nil {
		return
	}
	c, _, _, inDialog := g.find(t, req)
	id := ""
	if inDialog {
		id = c.id
	}
	g.fault("handler", id, v)
	if tx != nil && !req.IsAck() {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil))
	}
	if inDialog {
		c.fail()
	}
}

// fail ends the call after a fault in its signalling: BYE on both legs
// when answered, else the INVITE is stopped; call.failed, sip_fault. A
// panic while ending it is logged and left: nothing here may take the
// process down.
func (c *call) fail() {
	defer func() {
		if v := recover(); v != nil {
			c.g.log.Error("sip: panic ending a call after a fault; the call may not be ended",
				append([]zap.Field{zap.String("call", c.id)}, panics.Fields(v)...)...)
		}
	}()
	c.hangup(audit.ReasonSIPFault)
}

// recoverGo, deferred in a call's goroutines and timers, fails the call
// after a panic there.
func (c *call) recoverGo(what string) {
	if v := recover(); v != nil {
		c.g.fault(what, c.id, v)
		c.fail()
	}
}

// goCall runs fn on a goroutine of its own for the call: a panic there
// fails the call.
func (c *call) goCall(what string, fn func()) {
	go func() {
		defer c.recoverGo(what)
		fn()
	}()
}

// goQuiet runs fn on a goroutine of its own: a panic there is logged
// only. For the goroutines that end a call or a dialog already (a BYE, a
// CANCEL, an abandoned INVITE's answers), where failing the call again
// would send the same again.
func (g *Gateway) goQuiet(what, callID string, fn func()) {
	go func() {
		defer func() {
			if v := recover(); v != nil {
				g.fault(what, callID, v)
			}
		}()
		fn()
	}()
}

// isFault reports whether a call's outcome is a fault: a call.failed
// record comes before its sip.call_ended.
func isFault(r audit.Reason) bool {
	return r == audit.ReasonMediaFault || r == audit.ReasonRingFailed || r == audit.ReasonSIPFault
}
