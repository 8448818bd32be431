package sip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
)

// supportedRequire are the option tags the gateway accepts in Require.
// timer (RFC 4028) is passed through to the other leg; 100rel is removed
// (see doc.go).
var supportedRequire = map[string]bool{"timer": true, "100rel": true}

// validRequest reports whether req has what the gateway reads.
func validRequest(req *sip.Request) bool {
	return req.From() != nil && req.To() != nil && req.CallID() != nil && req.CSeq() != nil && req.Via() != nil
}

// cseqMismatch reports a request whose CSeq names another method: RFC
// 4475 3.1.2.8 says such a request gets 400.
func cseqMismatch(req *sip.Request) bool {
	cs := req.CSeq()
	return cs != nil && cs.MethodName != req.Method
}

func (g *Gateway) onInvite(t *trunk, req *sip.Request, tx sip.ServerTransaction) {
	if !validRequest(req) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		g.onInDialog(t, req, tx)
		return
	}
	g.newCall(t, req, tx)
}

func newSIPCallID(host string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "@" + host
}

// failureOutcome names the outcome of a call that got final response
// code.
func failureOutcome(code int) audit.Reason {
	switch {
	case code == 486 || code == 600:
		return audit.ReasonBusy
	case code == 603:
		return audit.ReasonDeclined
	case code == 487:
		return audit.ReasonCancelled
	case code == 404 || code == 484 || code == 604:
		return audit.ReasonNotFound
	case code == 408 || code == 480:
		return audit.ReasonNoAnswer
	case code == 488 || code == 606:
		return audit.ReasonNotAcceptable
	case code < 500:
		return audit.ReasonRejected
	}
	return audit.ReasonFailed
}

// mapFailure is the response sent to the caller for a failure from the
// callee. Redirects and authentication challenges are the gateway's to
// act on, not the caller's, and the gateway follows neither.
func mapFailure(code int, reason string) (int, string) {
	switch {
	case code >= 300 && code < 400:
		return 480, "Temporarily Unavailable"
	case code == 401 || code == 407:
		return 403, "Forbidden"
	}
	return code, reason
}

// newCall handles an INVITE that starts a call on trunk in.
func (g *Gateway) newCall(in *trunk, req *sip.Request, tx sip.ServerTransaction) {
	out := g.other(in)
	ind := uasDialog(in, req)
	ind.localName = req.To().DisplayName
	reject := func(code int, reason string) {
		_ = tx.Respond(ind.respond(req, code, reason, nil, ""))
	}
	g.mu.Lock()
	closing, dup := g.closing, g.calls[ind.callID] != nil
	g.mu.Unlock()
	switch {
	case closing:
		reject(503, "Service Unavailable")
		return
	case dup:
		reject(482, "Loop Detected")
		return
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() <= 1 {
		reject(483, "Too Many Hops")
		return
	}
	for _, tag := range optionTags(req, "Require") {
		if !supportedRequire[strings.ToLower(tag)] {
			res := ind.respond(req, 420, "Bad Extension", nil, "")
			res.AppendHeader(sip.NewHeader("Unsupported", tag))
			_ = tx.Respond(res)
			return
		}
	}
	sess, err := readSession(req)
	if err != nil {
		refuseBody(ind, req, tx, err)
		return
	}
	target, err := out.target(req)
	if err != nil {
		g.log.Info("no route for call", zap.String("trunk", in.name), zap.Error(err))
		reject(404, "Not Found")
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, 100, "Trying", nil))

	c := &call{g: g, id: newCallID(g.node), in: in.leg, abort: make(chan audit.Reason, 1), done: make(chan struct{})}
	for i := range c.origins {
		c.origins[i] = Origin{SessionID: uint64(time.Now().UnixNano()&0x7fff_ffff) + uint64(i), Version: 1}
	}
	c.sess, err = g.relay.Open(c.id)
	if err != nil {
		g.log.Error("media relay refused a call", zap.String("call", c.id), zap.Error(err))
		reject(503, "Service Unavailable")
		return
	}
	// A late offer (no SDP) goes on without one: the callee offers in
	// its 2xx, the caller answers in its ACK.
	var sdp []byte
	c.lateOffer = sess.sdp == nil
	if !c.lateOffer {
		if sdp, err = c.turn(in.leg, out.leg, sess.sdp, true); err != nil {
			c.sess.Close()
			code, reason := 488, "Not Acceptable Here"
			if errors.Is(err, ErrBadSDP) {
				code, reason = 400, "Bad Request"
			}
			g.log.Info("offer refused", zap.String("call", c.id), zap.String("trunk", in.name), zap.Error(err))
			reject(code, reason)
			return
		}
	}
	// RFC 3325: a caller who withholds its identity keeps it from an
	// untrusted trunk, From and P-Asserted-Identity alike (and the ISUP
	// part, which holds the calling number).
	withhold := withheld(req) && !out.cfg.Trusted
	var isup *bodyPart
	if g.cfg.ISUP == ISUPPass && !withhold {
		isup = sess.isup
	}

	// The outgoing leg is the gateway's own request: its Call-ID, tags,
	// Via and Contact, with the caller's identity and the correlation
	// headers copied.
	outd := &dialog{t: out, callID: newSIPCallID(out.addr.Addr().String()), localTag: sip.GenerateTagN(16), localSeq: randSeq(), transport: transportFor(target), target: target, sips: target.Scheme == "sips"}
	outd.localName = req.From().DisplayName
	outd.localURI = sip.Uri{Scheme: target.Scheme, User: req.From().Address.User, Host: out.addr.Addr().String()}
	caller := req.From().Address.User
	if withhold {
		outd.localName, outd.localURI = anonymousName, anonymousURI
		if out.leg == media.Platform {
			// The registry is the platform side's view of the call.
			caller = anonymousURI.User
		}
	}
	outd.remoteURI = sip.Uri{Scheme: target.Scheme, User: target.User, Host: target.Host, Port: target.Port}
	outReq := outd.request(sip.INVITE, 0)
	outd.inviteSeq = outReq.CSeq().SeqNo
	if mf := req.MaxForwards(); mf != nil {
		v := sip.MaxForwardsHeader(mf.Val() - 1)
		outReq.ReplaceHeader(&v)
	}
	copyHeaders(req, outReq, passHeaders)
	copyIdentity(req, outReq, out)
	copyHeaders(req, outReq, g.cfg.CorrelationHeaders)
	copyOptionTags(req, outReq)
	outReq.AppendHeader(sip.NewHeader("Allow", out.allow()))
	outReq.AppendHeader(sip.NewHeader("User-Agent", g.cfg.UserAgent))
	body, ctype := sessionBody(sdp, isup)
	setBody(outReq, body, ctype)

	c.legs[in.leg], c.legs[out.leg] = ind, outd
	info := &CallInfo{ID: c.id, Inbound: in.name, State: StateRinging, Start: time.Now(),
		Caller: caller, Callee: req.Recipient.User, Correlation: map[string]string{}}
	for _, h := range g.cfg.CorrelationHeaders {
		if v := headerValue(req, h); v != "" {
			info.Correlation[h] = v
		}
	}
	legInfo := func(d *dialog) LegInfo {
		return LegInfo{Trunk: d.t.name, CallID: d.callID, LocalTag: d.localTag, RemoteTag: d.remoteTag}
	}
	info.Carrier, info.Platform = legInfo(c.legs[0]), legInfo(c.legs[1])
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		c.sess.Close()
		reject(503, "Service Unavailable")
		return
	}
	g.calls[ind.callID], g.calls[outd.callID] = c, c
	g.wg.Add(1)
	g.mu.Unlock()
	g.reg.add(info)
	g.metrics.started()
	// The trunk the call came in on; it leaves on the other.
	g.record(audit.Record{Actor: "sip:" + hostOf(req.Source()), Origin: req.Source(), CallID: c.id, Event: audit.EventSIPCallStarted, Outcome: audit.Success,
		Trunk: in.name})
	g.log.Info("call started", zap.String("call", c.id), zap.String("in", in.name), zap.String("out", out.name))
	go c.watch()
	c.runInvite(req, tx, outReq)
}

func hostOf(hostport string) string {
	if i := strings.LastIndexByte(hostport, ':'); i > 0 {
		return strings.Trim(hostport[:i], "[]")
	}
	return hostport
}

// runInvite sends the INVITE on the outgoing leg and carries its
// responses back until the call is answered or failed.
func (c *call) runInvite(inReq *sip.Request, inTx sip.ServerTransaction, outReq *sip.Request) {
	g := c.g
	ind, outd := c.legs[c.in], c.legs[otherLeg(c.in)]
	tx, err := outd.t.transaction(context.Background(), outReq)
	if err != nil {
		g.log.Info("INVITE could not be sent", zap.String("call", c.id), zap.Error(err))
		_ = inTx.Respond(ind.respond(inReq, 503, "Service Unavailable", nil, ""))
		c.end(ending{outcome: audit.ReasonFailed, trunk: outd.t.name})
		return
	}
	keep := false // a 2xx: the transaction ends by itself (Timer M)
	defer func() {
		if !keep {
			tx.Terminate()
		}
	}()
	cancelled := make(chan struct{})
	var cancelOnce sync.Once
	closeCancelled := func() { cancelOnce.Do(func() { close(cancelled) }) }
	if !inTx.OnCancel(func(*sip.Request) { closeCancelled() }) {
		closeCancelled()
	}
	ring := time.NewTimer(g.cfg.RingTimeout)
	defer ring.Stop()

	var (
		gotProvisional bool
		stopping       bool         // CANCEL sent or to be sent
		stopOutcome    audit.Reason // outcome when the call is stopped by us
		stopCode       int          // response for the caller then (0: sipgo sent 487)
		cancelSent     bool
	)
	sendCancel := func() {
		if cancelSent || !gotProvisional {
			return // RFC 3261 9.1: not before a provisional response
		}
		cancelSent = true
		creq := cancelFor(outReq)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
			defer cancel()
			_, _ = outd.do(ctx, creq)
		}()
	}
	stop := func(outcome audit.Reason, code int) {
		if stopping {
			return
		}
		stopping, stopOutcome, stopCode = true, outcome, code
		sendCancel()
	}
	responses, done := tx.Responses(), tx.Done()
	for {
		select {
		case res := <-responses:
			switch {
			case res.StatusCode == 100:
				continue
			case res.IsProvisional():
				gotProvisional = true
				if stopping {
					sendCancel()
					continue
				}
				c.provisional(inReq, inTx, res)
			case res.IsSuccess():
				if stopping {
					// The callee answered as we cancelled: RFC 3261 9.1
					// says ACK and BYE it.
					outd.learnUAC(res)
					newAcker(tx, outd, outd.inviteSeq).send(nil)
					c.bye(int(c.in))
					c.finishStopped(inReq, inTx, stopOutcome, stopCode)
					return
				}
				keep = true
				c.answer(inReq, inTx, tx, res)
				return
			default:
				if stopping {
					c.finishStopped(inReq, inTx, stopOutcome, stopCode)
					return
				}
				code, reason := mapFailure(res.StatusCode, res.Reason)
				_ = inTx.Respond(ind.respond(inReq, code, reason, nil, ""))
				c.end(ending{outcome: failureOutcome(res.StatusCode), trunk: outd.t.name, status: res.StatusCode})
				return
			}
		case <-done:
			if stopping {
				c.finishStopped(inReq, inTx, stopOutcome, stopCode)
				return
			}
			code, reason := 503, "Service Unavailable"
			if errors.Is(tx.Err(), sip.ErrTransactionTimeout) {
				code, reason = 408, "Request Timeout"
			}
			_ = inTx.Respond(ind.respond(inReq, code, reason, nil, ""))
			c.end(ending{outcome: failureOutcome(code), trunk: outd.t.name})
			return
		case <-cancelled:
			cancelled = nil
			stop(audit.ReasonCancelled, 0) // sipgo has answered 487 to the caller
		case reason := <-c.abort:
			code := 503
			if reason == audit.ReasonBye {
				code = 487
			}
			stop(reason, code)
		case <-ring.C:
			stop(audit.ReasonNoAnswer, 408)
		}
	}
}

// finishStopped ends a call the gateway or the caller stopped before it
// was answered.
func (c *call) finishStopped(inReq *sip.Request, inTx sip.ServerTransaction, outcome audit.Reason, code int) {
	if code != 0 {
		reason := "Service Unavailable"
		switch code {
		case 408:
			reason = "Request Timeout"
		case 487:
			reason = "Request Terminated"
		}
		_ = inTx.Respond(c.legs[c.in].respond(inReq, code, reason, nil, ""))
	}
	c.end(ending{outcome: outcome})
}

// cancelFor builds the CANCEL of a sent INVITE (RFC 3261 9.1), to go
// the way the INVITE went (over TCP when its size took it there).
func cancelFor(inv *sip.Request) *sip.Request {
	r := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	r.AppendHeader(sip.HeaderClone(inv.Via()))
	r.AppendHeader(sip.HeaderClone(inv.From()))
	r.AppendHeader(sip.HeaderClone(inv.To()))
	r.AppendHeader(sip.HeaderClone(inv.CallID()))
	r.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	r.AppendHeader(&mf)
	sip.CopyHeaders("Route", inv, r)
	r.SetBody(nil)
	r.SetTransport(inv.Transport())
	r.Laddr = inv.Laddr
	return r
}

// provisional passes a 18x on, with its SDP (early media) turned. With a
// late offer a 18x carries no SDP on: the caller could not answer an
// offer in an unreliable provisional response.
func (c *call) provisional(inReq *sip.Request, inTx sip.ServerTransaction, res *sip.Response) {
	ind, outd := c.legs[c.in], c.legs[otherLeg(c.in)]
	if tag, _ := res.To().Params.Get("tag"); tag != "" {
		outd.learnUAC(res)
	}
	var body []byte
	state := StateRinging
	if rs, err := readSession(res); err == nil && rs.sdp != nil && !c.lateOffer {
		b, err := c.turn(otherLeg(c.in), c.in, rs.sdp, false)
		if err != nil {
			c.g.log.Info("early media SDP refused; 18x passed on without it", zap.String("call", c.id), zap.Error(err))
		} else {
			body, state = b, StateEarly
		}
	}
	out := ind.respond(inReq, res.StatusCode, res.Reason, body, "application/sdp")
	copyIdentity(res, out, ind.t)
	_ = inTx.Respond(out)
	c.g.reg.update(c.id, func(ci *CallInfo) {
		ci.State = state
		c.legInfo(ci)
	})
}

// legInfo copies the legs' tags into the registry entry.
func (c *call) legInfo(ci *CallInfo) {
	for l, d := range c.legs {
		d.mu.Lock()
		li := LegInfo{Trunk: d.t.name, CallID: d.callID, LocalTag: d.localTag, RemoteTag: d.remoteTag}
		d.mu.Unlock()
		if l == 0 {
			ci.Carrier = li
		} else {
			ci.Platform = li
		}
	}
}

// answer completes the call on a 2xx from the callee.
func (c *call) answer(inReq *sip.Request, inTx sip.ServerTransaction, tx sip.ClientTransaction, res *sip.Response) {
	g := c.g
	ind, outd := c.legs[c.in], c.legs[otherLeg(c.in)]
	outd.learnUAC(res)
	acker := newAcker(tx, outd, outd.inviteSeq)
	if c.lateOffer {
		c.answerLate(inReq, inTx, res, acker)
		return
	}
	acker.send(nil)
	var body []byte
	rs, err := readSession(res)
	if err != nil {
		g.log.Info("2xx body unreadable", zap.String("call", c.id), zap.Error(err))
	}
	if rs.sdp != nil {
		b, err := c.turn(otherLeg(c.in), c.in, rs.sdp, false)
		if err != nil {
			g.log.Info("answer SDP refused", zap.String("call", c.id), zap.Error(err))
			c.bye(int(c.in))
			_ = inTx.Respond(ind.respond(inReq, 488, "Not Acceptable Here", nil, ""))
			c.end(ending{outcome: audit.ReasonNotAcceptable, trunk: outd.t.name, status: res.StatusCode})
			return
		}
		body = b
	} else {
		// The answer came in an unreliable 18x (a preview, RFC 3261
		// 13.2.1); send the caller the same again.
		c.mu.Lock()
		body = c.lastSDP[c.in]
		c.mu.Unlock()
		if body == nil {
			c.bye(int(c.in))
			_ = inTx.Respond(ind.respond(inReq, 502, "Bad Gateway", nil, ""))
			c.end(ending{outcome: audit.ReasonFailed, trunk: outd.t.name, status: res.StatusCode})
			return
		}
	}
	out := ind.respond(inReq, res.StatusCode, res.Reason, body, "application/sdp")
	copyHeaders(res, out, passHeaders)
	copyIdentity(res, out, ind.t)
	copyOptionTags(res, out)
	w := c.expectAck(c.in, inReq.CSeq().SeqNo)
	c.mu.Lock()
	c.answered = true
	c.mu.Unlock()
	if err := inTx.Respond(out); err != nil {
		// The caller cancelled as the callee answered.
		g.log.Info("2xx to caller failed", zap.String("call", c.id), zap.Error(err))
		c.bye(int(c.in))
		c.end(ending{outcome: audit.ReasonCancelled, trunk: ind.t.name})
		return
	}
	now := time.Now()
	g.reg.update(c.id, func(ci *CallInfo) {
		ci.State, ci.Answer = StateAnswered, now
		c.legInfo(ci)
	})
	g.log.Info("call answered", zap.String("call", c.id))
	c.retransmit(c.in, inTx, out, w, nil)
}

// answerLate completes a late-offer call on a 2xx from the callee: its
// offer goes to the caller in the gateway's 2xx, and the caller's answer,
// in its ACK, to the callee in the gateway's ACK (acker). A 2xx without
// a usable offer, or an ACK without a usable answer, ends the call.
func (c *call) answerLate(inReq *sip.Request, inTx sip.ServerTransaction, res *sip.Response, acker *acker) {
	g := c.g
	ind, outd := c.legs[c.in], c.legs[otherLeg(c.in)]
	refuse := func(code int, text string, outcome audit.Reason, err error) {
		g.log.Info("late offer failed", zap.String("call", c.id), zap.Int("status", code), zap.Error(err))
		// RFC 3261 13.2.2.4: ACK the 2xx, then BYE.
		acker.send(nil)
		c.bye(int(c.in))
		_ = inTx.Respond(ind.respond(inReq, code, text, nil, ""))
		c.end(ending{outcome: outcome, trunk: outd.t.name, status: res.StatusCode})
	}
	rs, err := readSession(res)
	if err != nil || rs.sdp == nil {
		refuse(502, "Bad Gateway", audit.ReasonFailed, err)
		return
	}
	offer, err := c.turn(otherLeg(c.in), c.in, rs.sdp, true)
	if err != nil {
		refuse(488, "Not Acceptable Here", audit.ReasonNotAcceptable, err)
		return
	}
	out := ind.respond(inReq, res.StatusCode, res.Reason, offer, "application/sdp")
	copyHeaders(res, out, passHeaders)
	copyIdentity(res, out, ind.t)
	copyOptionTags(res, out)
	w := c.expectAck(c.in, inReq.CSeq().SeqNo)
	c.mu.Lock()
	c.answered = true
	c.mu.Unlock()
	if err := inTx.Respond(out); err != nil {
		g.log.Info("2xx to caller failed", zap.String("call", c.id), zap.Error(err))
		acker.send(nil)
		c.bye(int(c.in))
		c.end(ending{outcome: audit.ReasonCancelled, trunk: ind.t.name})
		return
	}
	now := time.Now()
	g.reg.update(c.id, func(ci *CallInfo) {
		ci.State, ci.Answer = StateAnswered, now
		c.legInfo(ci)
	})
	g.log.Info("call answered (late offer)", zap.String("call", c.id))
	ack := c.retransmit(c.in, inTx, out, w, func() { acker.send(nil) })
	if ack == nil {
		acker.send(nil)
		return
	}
	c.finishLateOffer(c.in, ack, acker, func(_ int, _ string, why string, err error) {
		g.log.Info("late offer failed, ending call", zap.String("call", c.id), zap.String("why", why), zap.Error(err))
		acker.send(nil)
		c.hangup(audit.ReasonFailed)
	})
}
