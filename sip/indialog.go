package sip

import (
	"context"
	"errors"
	"sync"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
)

// find returns the call, dialog and leg an in-dialog message on trunk t
// belongs to: the leg's dialog, or one a transfer replaced. A Call-ID of
// a leg on the other trunk does not match: a peer of one trunk cannot
// act on the other trunk's dialog.
func (g *Gateway) find(t *trunk, m message) (*call, *dialog, media.Leg, bool) {
	if m.CallID() == nil {
		return nil, nil, 0, false
	}
	id := m.CallID().Value()
	c := g.lookup(id)
	if c == nil {
		return nil, nil, 0, false
	}
	var d *dialog
	c.mu.Lock()
	if cur := c.legs[t.leg]; cur != nil && cur.callID == id {
		d = cur
	} else {
		for _, r := range c.retired {
			if r.t == t && r.callID == id {
				d = r
			}
		}
	}
	c.mu.Unlock()
	if d == nil {
		return nil, nil, 0, false
	}
	// RFC 3261 12.2.2: the dialog is Call-ID and both tags; a request
	// with the right Call-ID but other tags is not in it.
	from, to := m.From(), m.To()
	if from == nil || to == nil {
		return nil, nil, 0, false
	}
	ft, _ := from.Params.Get("tag")
	tt, _ := to.Params.Get("tag")
	d.mu.Lock()
	match := tt == d.localTag && (d.remoteTag == "" || ft == d.remoteTag)
	d.mu.Unlock()
	if !match {
		return nil, nil, 0, false
	}
	return c, d, t.leg, true
}

func (g *Gateway) onAck(t *trunk, req *sip.Request, _ sip.ServerTransaction) {
	if c, d, leg, ok := g.find(t, req); ok && req.CSeq() != nil && d == c.leg(leg) {
		// Its body, if any, is read by whoever waits for it: the answer
		// to an offer the gateway made in a 2xx (late offer).
		c.gotAck(leg, req)
	}
}

// onInDialog handles requests inside a call's dialog (BYE, re-INVITE,
// UPDATE, INFO, ...). From the carrier only BYE, re-INVITE and UPDATE
// go on (ACK and CANCEL have their own handlers): see carrier.go.
func (g *Gateway) onInDialog(t *trunk, req *sip.Request, tx sip.ServerTransaction) {
	if !validRequest(req) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	c, d, leg, ok := g.find(t, req)
	if !ok {
		if r := g.recordingOf(t, req); r != nil && r.d.acceptSeq(req) {
			r.onRequest(req, tx)
			return
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	if !d.acceptSeq(req) {
		_ = tx.Respond(d.respond(req, 500, "Server Internal Error", nil, ""))
		return
	}
	if tag := unsupportedRequire(req); tag != "" {
		// RFC 3261 8.2.2.3.
		res := d.respond(req, 420, "Bad Extension", nil, "")
		res.AppendHeader(sip.NewHeader("Unsupported", tag))
		_ = tx.Respond(res)
		return
	}
	if d != c.leg(leg) {
		// A dialog a transfer replaced: its BYE is answered, and that
		// is all it can do.
		if req.Method == sip.BYE {
			_ = tx.Respond(d.respond(req, 200, "OK", nil, ""))
			return
		}
		_ = tx.Respond(d.respond(req, 481, "Call/Transaction Does Not Exist", nil, ""))
		return
	}
	switch {
	case req.Method == sip.BYE:
		_ = tx.Respond(d.respond(req, 200, "OK", nil, ""))
		if leg == media.Platform && c.transferBye(d) {
			return // the transferor left; the transfer goes on
		}
		c.byeFrom(leg)
	case (req.Method == sip.INVITE || req.Method == sip.UPDATE) && g.agentOf(c) != nil:
		c.agentReoffer(g.agentOf(c), req, tx) // a browser agent's call (agentcall.go)
	case req.Method == sip.INVITE || req.Method == sip.UPDATE:
		c.reoffer(leg, req, tx)
	case req.Method == sip.PRACK:
		// The gateway's own, on either leg: it never crosses.
		c.prack(leg, req, tx)
	case leg == media.Carrier:
		c.fromCarrier(req, tx)
	case req.Method == sip.REFER:
		c.refer(req, tx)
	default:
		c.forward(leg, req, tx)
	}
}

// byeFrom ends the call after a BYE on leg.
func (c *call) byeFrom(leg media.Leg) {
	c.mu.Lock()
	answered := c.answered
	c.mu.Unlock()
	if !answered {
		select {
		case c.abort <- audit.ReasonBye:
		default:
		}
		return
	}
	c.bye(int(leg))
	c.end(ending{outcome: audit.ReasonCompleted, trunk: legName(leg)})
}

// refuseBody answers a request whose body the gateway cannot take: 400
// for one it cannot read, 415 (with Accept) for one of a type it does not
// take.
func refuseBody(d *dialog, req *sip.Request, tx sip.ServerTransaction, err error) {
	if errors.Is(err, ErrUnsupportedBody) {
		res := d.respond(req, 415, "Unsupported Media Type", nil, "")
		res.AppendHeader(sip.NewHeader("Accept", sessionAccept))
		_ = tx.Respond(res)
		return
	}
	_ = tx.Respond(d.respond(req, 400, "Bad Request", nil, ""))
}

// reoffer carries a re-INVITE or UPDATE from leg to the other leg, its
// SDP turned both ways so that media stays on the relay. A re-INVITE
// without SDP (CUCM's hold and transfer) goes across without one: the
// other side's offer comes back in the 2xx and the answer in the ACK.
func (c *call) reoffer(leg media.Leg, req *sip.Request, tx sip.ServerTransaction) {
	g := c.g
	d, od := c.leg(leg), c.leg(otherLeg(leg))
	isInvite := req.IsInvite()
	sess, err := readSession(req)
	if err != nil {
		refuseBody(d, req, tx, err)
		return
	}
	c.mu.Lock()
	answered, busy := c.answered, c.pending
	if !busy {
		c.pending = true
	}
	c.mu.Unlock()
	switch {
	case busy:
		res := d.respond(req, 491, "Request Pending", nil, "")
		_ = tx.Respond(res)
		return
	case isInvite && !answered, !od.confirmed():
		c.mu.Lock()
		c.pending = false
		c.mu.Unlock()
		_ = tx.Respond(d.respond(req, 491, "Request Pending", nil, ""))
		return
	}
	released := false
	release := func() { // once: a later offer may hold pending by then
		if !released {
			released = true
			c.mu.Lock()
			c.pending = false
			c.mu.Unlock()
		}
	}
	defer release()
	if min := c.timerOffered(leg, req); min > 0 {
		refuse422(d, req, tx, min)
		return
	}
	if isInvite {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 100, "Trying", nil))
	}
	d.refreshTarget(req)
	var body []byte
	offered := sess.sdp != nil
	if offered {
		b, err := c.turn(leg, otherLeg(leg), sess.sdp, true)
		if err != nil {
			g.log.Info("re-offer refused", zap.String("call", c.id), zap.String("leg", legName(leg)), zap.Error(err))
			_ = tx.Respond(d.respond(req, 488, "Not Acceptable Here", nil, ""))
			return
		}
		body = b
	}
	out := od.request(req.Method, 0)
	copyIdentity(req, out, od.t)
	c.timerAsk(otherLeg(leg), out, 0)
	out.AppendHeader(sip.NewHeader("Supported", "timer"))
	if isInvite {
		out.AppendHeader(sip.NewHeader("Allow", od.t.allow()))
	}
	setBody(out, body, "application/sdp")

	ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
	defer cancel()
	res, acker, err := od.invite(ctx, out)
	if err != nil {
		if offered {
			c.rollback(leg)
		}
		code, reason := 503, "Service Unavailable"
		if errors.Is(err, sip.ErrTransactionTimeout) || errors.Is(err, context.DeadlineExceeded) {
			code, reason = 408, "Request Timeout"
		}
		_ = tx.Respond(d.respond(req, code, reason, nil, ""))
		return
	}
	if !res.IsSuccess() {
		if offered {
			c.rollback(leg)
		}
		code, reason := mapFailure(res.StatusCode, res.Reason)
		_ = tx.Respond(d.respond(req, code, reason, nil, ""))
		if res.StatusCode == 481 || res.StatusCode == 408 {
			// RFC 5057: the other dialog is gone; so is the call.
			c.bye(int(otherLeg(leg)))
			c.end(ending{outcome: audit.ReasonFailed, trunk: legName(otherLeg(leg)), method: auditMethod(req.Method), status: res.StatusCode})
		}
		return
	}
	od.refreshTarget(res)
	c.timerAnswered(otherLeg(leg), res, 0)
	if isInvite && !offered {
		c.reofferLate(leg, req, tx, res, acker)
		return
	}
	if acker != nil {
		acker.send(nil)
	}
	var answer []byte
	if offered {
		rs, err := readSession(res)
		if err != nil || rs.sdp == nil {
			_ = tx.Respond(d.respond(req, 502, "Bad Gateway", nil, ""))
			return
		}
		if answer, err = c.turn(otherLeg(leg), leg, rs.sdp, false); err != nil {
			g.log.Info("re-offer answer refused", zap.String("call", c.id), zap.Error(err))
			c.rollback(leg)
			_ = tx.Respond(d.respond(req, 488, "Not Acceptable Here", nil, ""))
			return
		}
	}
	resp := d.respond(req, res.StatusCode, res.Reason, answer, "application/sdp")
	copyIdentity(res, resp, d.t)
	c.timerAnswer(leg, resp)
	resp.AppendHeader(sip.NewHeader("Supported", supportedTags))
	if !isInvite {
		// An UPDATE's offer/answer is over once its 2xx is sent (RFC
		// 3311): the peer may send the next one at once, which must not
		// find this one still pending (491).
		release()
		_ = tx.Respond(resp)
		c.timerRestart(leg)
		return
	}
	w := c.expectAck(leg, req.CSeq().SeqNo)
	_ = tx.Respond(resp)
	c.timerRestart(leg)
	c.retransmit(leg, tx, resp, w, nil)
}

// reofferLate finishes an offerless re-INVITE from leg: the other side's
// 2xx holds the offer, which goes to leg in the gateway's 2xx; leg's ACK
// holds the answer, which goes to the other side in the gateway's ACK. A
// missing or unusable offer or answer ends the call, on both legs.
func (c *call) reofferLate(leg media.Leg, req *sip.Request, tx sip.ServerTransaction, res *sip.Response, acker *acker) {
	g := c.g
	d := c.leg(leg)
	fail := func(code int, text, why string, err error) {
		g.log.Info("offerless re-INVITE failed, ending call", zap.String("call", c.id), zap.String("leg", legName(leg)), zap.String("why", why), zap.Error(err))
		acker.send(nil)
		if code != 0 {
			_ = tx.Respond(d.respond(req, code, text, nil, ""))
		}
		c.hangup(audit.ReasonFailed)
	}
	rs, err := readSession(res)
	if err != nil || rs.sdp == nil {
		fail(502, "Bad Gateway", "no offer in 2xx", err)
		return
	}
	offer, err := c.turn(otherLeg(leg), leg, rs.sdp, true)
	if err != nil {
		fail(488, "Not Acceptable Here", "offer refused", err)
		return
	}
	resp := d.respond(req, res.StatusCode, res.Reason, offer, "application/sdp")
	copyIdentity(res, resp, d.t)
	c.timerAnswer(leg, resp)
	resp.AppendHeader(sip.NewHeader("Supported", supportedTags))
	w := c.expectAck(leg, req.CSeq().SeqNo)
	_ = tx.Respond(resp)
	c.timerRestart(leg)
	ack := c.retransmit(leg, tx, resp, w, func() { acker.send(nil) })
	if ack == nil {
		acker.send(nil) // the call is ending: stop the other side's 2xx
		return
	}
	c.finishLateOffer(leg, ack, acker, fail)
}

// finishLateOffer takes the answer in ack, received on leg for an offer
// the gateway made there in a 2xx, and sends it turned in the ACK of the
// other leg's 2xx (acker). fail ends the call.
func (c *call) finishLateOffer(leg media.Leg, ack *sip.Request, acker *acker, fail func(int, string, string, error)) {
	as, err := readSession(ack)
	if err != nil || as.sdp == nil {
		fail(0, "", "no answer in ACK", err)
		return
	}
	answer, err := c.turn(leg, otherLeg(leg), as.sdp, false)
	if err != nil {
		fail(0, "", "answer refused", err)
		return
	}
	acker.send(answer)
}

// invite sends a request that may be an INVITE on the dialog's trunk and
// returns its final response. For a 2xx to an INVITE it also returns the
// acker of its ACK, which the caller must send; the transaction stays
// until Timer M for the 2xx's retransmissions.
func (d *dialog) invite(ctx context.Context, req *sip.Request) (*sip.Response, *acker, error) {
	tx, res, err := d.send(ctx, req)
	if tx == nil {
		return nil, nil, err
	}
	if err != nil || !req.IsInvite() || !res.IsSuccess() {
		tx.Terminate()
		return res, nil, err
	}
	return res, newAcker(tx, d, req.CSeq().SeqNo), nil
}

// acker sends the ACK of a 2xx to an INVITE the gateway sent on a
// dialog, and again for each retransmission of that 2xx. Until send is
// called, retransmissions get no ACK: with a late offer the ACK carries
// the answer, which the gateway does not have yet. A 2xx with another
// To tag (a fork) goes to other, when set.
type acker struct {
	d   *dialog
	seq uint32

	mu    sync.Mutex
	tmpl  *sip.Request // the ACK as built, before sipgo adds its Via
	other func(*sip.Response)
}

func newAcker(tx sip.ClientTransaction, d *dialog, seq uint32) *acker {
	a := &acker{d: d, seq: seq}
	tx.OnRetransmission(func(r *sip.Response) {
		if !r.IsSuccess() {
			return
		}
		tag, _ := r.To().Params.Get("tag")
		a.mu.Lock()
		tmpl, other := a.tmpl, a.other
		a.mu.Unlock()
		switch {
		case tag != d.peerTag():
			if other != nil {
				other(r)
			}
		case tmpl != nil:
			_ = d.t.cli.WriteRequest(tmpl.Clone(), d.t.build)
		}
	})
	return a
}

// send sends the ACK, with sdp as its body when not nil; only the first
// call sends.
func (a *acker) send(sdp []byte) {
	a.mu.Lock()
	if a.tmpl != nil {
		a.mu.Unlock()
		return
	}
	ack := a.d.request(sip.ACK, a.seq)
	setBody(ack, sdp, "application/sdp")
	a.tmpl = ack.Clone()
	a.mu.Unlock()
	_ = a.d.t.cli.WriteRequest(ack, a.d.t.build)
}

// forward carries an in-dialog request from the platform to the carrier
// and its final response back. Nothing from the carrier comes here
// (onInDialog sends it to fromCarrier); should it, it is refused.
func (c *call) forward(leg media.Leg, req *sip.Request, tx sip.ServerTransaction) {
	d, od := c.leg(leg), c.leg(otherLeg(leg))
	if leg == media.Carrier {
		c.stop(req, tx, refusedMethod, 403, "Forbidden", nil)
		return
	}
	if !od.confirmed() {
		_ = tx.Respond(d.respond(req, 481, "Call/Transaction Does Not Exist", nil, ""))
		return
	}
	out := od.request(req.Method, 0)
	copyHeaders(req, out, []string{"Event", "Subscription-State", "Info-Package"})
	setBody(out, req.Body(), contentTypeRaw(req))
	ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
	defer cancel()
	res, err := od.do(ctx, out)
	if err != nil {
		_ = tx.Respond(d.respond(req, 408, "Request Timeout", nil, ""))
		return
	}
	code, reason := mapFailure(res.StatusCode, res.Reason)
	resp := d.respond(req, code, reason, res.Body(), contentTypeRaw(res))
	_ = tx.Respond(resp)
}
