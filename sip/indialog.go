package sip

import (
	"context"
	"errors"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
)

// find returns the call and leg an in-dialog message on trunk t belongs
// to. A Call-ID of a leg on the other trunk does not match: a peer of one
// trunk cannot act on the other trunk's dialog.
func (g *Gateway) find(t *trunk, m message) (*call, media.Leg, bool) {
	if m.CallID() == nil {
		return nil, 0, false
	}
	c := g.lookup(m.CallID().Value())
	if c == nil {
		return nil, 0, false
	}
	d := c.legs[t.leg]
	if d == nil || d.callID != m.CallID().Value() {
		return nil, 0, false
	}
	// RFC 3261 12.2.2: the dialog is Call-ID and both tags; a request
	// with the right Call-ID but other tags is not in it.
	from, to := m.From(), m.To()
	if from == nil || to == nil {
		return nil, 0, false
	}
	ft, _ := from.Params.Get("tag")
	tt, _ := to.Params.Get("tag")
	d.mu.Lock()
	match := tt == d.localTag && (d.remoteTag == "" || ft == d.remoteTag)
	d.mu.Unlock()
	if !match {
		return nil, 0, false
	}
	return c, t.leg, true
}

func (g *Gateway) onAck(t *trunk, req *sip.Request, _ sip.ServerTransaction) {
	if c, leg, ok := g.find(t, req); ok && req.CSeq() != nil {
		// An ACK with SDP would answer an offer made in a 2xx, which the
		// gateway never makes; its body is not read.
		c.gotAck(leg, req.CSeq().SeqNo)
	}
}

// onInDialog handles requests inside a call's dialog (BYE, re-INVITE,
// UPDATE, INFO, ...).
func (g *Gateway) onInDialog(t *trunk, req *sip.Request, tx sip.ServerTransaction) {
	if !validRequest(req) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	c, leg, ok := g.find(t, req)
	if !ok {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	d := c.legs[leg]
	if !d.acceptSeq(req) {
		_ = tx.Respond(d.respond(req, 500, "Server Internal Error", nil, ""))
		return
	}
	switch req.Method {
	case sip.BYE:
		_ = tx.Respond(d.respond(req, 200, "OK", nil, ""))
		c.byeFrom(leg)
	case sip.INVITE, sip.UPDATE:
		c.reoffer(leg, req, tx)
	case sip.INFO:
		if ct := contentType(req); leg == media.Carrier && isDTMFInfo(ct) {
			c.infoDigit(req, tx, ct)
			return
		}
		c.forward(leg, req, tx)
	case sip.REFER:
		// A transfer would move the call off the gateway.
		_ = tx.Respond(d.respond(req, 403, "Forbidden", nil, ""))
	case sip.PRACK:
		// The gateway never sends reliable provisional responses.
		_ = tx.Respond(d.respond(req, 481, "Call/Transaction Does Not Exist", nil, ""))
	default:
		c.forward(leg, req, tx)
	}
}

// infoDigit answers a SIP INFO key press from the carrier and gives it to
// the relay. It is never forwarded to the platform, and its body is never
// logged.
func (c *call) infoDigit(req *sip.Request, tx sip.ServerTransaction, ct string) {
	d := c.legs[media.Carrier]
	digit, dur, err := parseDTMFInfo(ct, req.Body())
	if err != nil {
		_ = tx.Respond(d.respond(req, 400, "Bad Request", nil, ""))
		return
	}
	// The digit is in the relay's stream before the customer's phone hears
	// that it was taken.
	c.sess.InfoDigit(digit, dur)
	c.g.metrics.info()
	_ = tx.Respond(d.respond(req, 200, "OK", nil, ""))
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

// reoffer carries a re-INVITE or UPDATE from leg to the other leg, its
// SDP turned both ways so that media stays on the relay.
func (c *call) reoffer(leg media.Leg, req *sip.Request, tx sip.ServerTransaction) {
	g := c.g
	d, od := c.legs[leg], c.legs[otherLeg(leg)]
	isInvite := req.IsInvite()
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
	defer func() {
		c.mu.Lock()
		c.pending = false
		c.mu.Unlock()
	}()
	if isInvite {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 100, "Trying", nil))
	}
	d.refreshTarget(req)
	var body []byte
	offered := hasSDP(req)
	if offered {
		b, err := c.turn(leg, otherLeg(leg), req.Body())
		if err != nil {
			g.log.Info("re-offer refused", zap.String("call", c.id), zap.String("leg", legName(leg)), zap.Error(err))
			_ = tx.Respond(d.respond(req, 488, "Not Acceptable Here", nil, ""))
			return
		}
		body = b
	} else if isInvite {
		// An offerless re-INVITE would need the answer carried in the
		// ACK; not supported (doc.go).
		_ = tx.Respond(d.respond(req, 488, "Not Acceptable Here", nil, ""))
		return
	}
	out := od.request(req.Method, 0)
	copyHeaders(req, out, passHeaders)
	copyOptionTags(req, out)
	if body != nil {
		ct := sip.ContentTypeHeader("application/sdp")
		out.AppendHeader(&ct)
	}
	out.SetBody(body)

	ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
	defer cancel()
	res, err := od.doInvite(ctx, out)
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
	var answer []byte
	if offered {
		if !hasSDP(res) {
			_ = tx.Respond(d.respond(req, 502, "Bad Gateway", nil, ""))
			return
		}
		if answer, err = c.turn(otherLeg(leg), leg, res.Body()); err != nil {
			g.log.Info("re-offer answer refused", zap.String("call", c.id), zap.Error(err))
			c.rollback(leg)
			_ = tx.Respond(d.respond(req, 488, "Not Acceptable Here", nil, ""))
			return
		}
	}
	resp := d.respond(req, res.StatusCode, res.Reason, answer, "application/sdp")
	copyHeaders(res, resp, passHeaders)
	copyOptionTags(res, resp)
	if !isInvite {
		_ = tx.Respond(resp)
		return
	}
	ackCh := c.expectAck(leg, req.CSeq().SeqNo)
	_ = tx.Respond(resp)
	c.retransmit(leg, tx, resp, ackCh)
}

// doInvite is do, plus the ACK for a 2xx when req is an INVITE.
func (d *dialog) doInvite(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	res, err := d.do(ctx, req)
	if err == nil && req.IsInvite() && res.IsSuccess() {
		ack := d.request(sip.ACK, req.CSeq().SeqNo)
		err = d.t.cli.WriteRequest(ack)
	}
	return res, err
}

// forward carries any other in-dialog request to the other leg and its
// final response back.
func (c *call) forward(leg media.Leg, req *sip.Request, tx sip.ServerTransaction) {
	d, od := c.legs[leg], c.legs[otherLeg(leg)]
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
