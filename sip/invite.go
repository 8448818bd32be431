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
	"github.com/tonevault/tonevault/internal/panics"
	"github.com/tonevault/tonevault/media"
)

// supportedRequire are the option tags the gateway accepts in Require:
// session timers (RFC 4028) and reliable provisional responses (RFC
// 3262), each done on each leg by the gateway itself.
var supportedRequire = map[string]bool{"timer": true, "100rel": true}

// supportedTags is the gateway's Supported in OPTIONS answers and its
// responses.
const supportedTags = "100rel, timer"

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
	// A panic while the call is set up (runInvite recovers its own):
	// the caller gets 500, the media session is freed, and a call
	// already registered ends with call.failed.
	var c *call
	registered := false
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		id := ""
		if c != nil {
			id = c.id
		}
		g.fault("setup", id, v)
		_ = tx.Respond(sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil))
		switch {
		case registered: // not answered: runInvite recovers from there on
			c.end(ending{outcome: audit.ReasonSIPFault, trunk: in.name, method: string(sip.INVITE)})
		case c != nil && c.sess != nil:
			c.sess.Close()
		}
	}()
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
	if tag := unsupportedRequire(req); tag != "" {
		res := ind.respond(req, 420, "Bad Extension", nil, "")
		res.AppendHeader(sip.NewHeader("Unsupported", tag))
		_ = tx.Respond(res)
		return
	}
	if se, _, ok := sessionExpires(req); ok && se < g.cfg.SessionTimer.MinSE {
		refuse422(ind, req, tx, g.cfg.SessionTimer.MinSE)
		return
	}
	sess, err := readSession(req)
	if err != nil {
		refuseBody(ind, req, tx, err)
		return
	}
	pool, uris, err := g.route(out, req) // pool: browser agents (agentcall.go)
	if err != nil {
		g.log.Info("no route for call", zap.String("trunk", in.name), zap.Error(err))
		reject(404, "Not Found")
		return
	}
	target := uris[0]
	if g.refuseUnrecorded(in, req, reject) {
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, 100, "Trying", nil))

	c = &call{g: g, id: newCallID(g.node), in: in.leg, abort: make(chan audit.Reason, 1), done: make(chan struct{})}
	for i := range c.origins {
		c.origins[i] = Origin{SessionID: uint64(time.Now().UnixNano()&0x7fff_ffff) + uint64(i), Version: 1}
	}
	c.inviteSeq = req.CSeq().SeqNo
	c.rel = relState{use: supports(req, "100rel"), require: hasTag(req, "Require", "100rel"), tx: tx}
	c.timerOffered(in.leg, req)
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
	// headers copied; its session timer and 100rel are the gateway's.
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
	body, ctype := sessionBody(sdp, isup)
	// What the legs the gateway makes on the out trunk say of the
	// caller: its asserted identity and the correlation headers (a
	// transfer's new leg says the same).
	ident := sip.NewRequest(sip.INVITE, target)
	copyIdentity(req, ident, out)
	copyHeaders(req, ident, g.cfg.CorrelationHeaders)
	if out.leg == media.Platform {
		c.identity = ident.Headers()
	}
	build := func(r *sip.Request) {
		if mf := req.MaxForwards(); mf != nil {
			v := sip.MaxForwardsHeader(mf.Val() - 1)
			r.ReplaceHeader(&v)
		}
		for _, h := range ident.Headers() {
			r.AppendHeader(sip.HeaderClone(h))
		}
		r.AppendHeader(sip.NewHeader("Allow", out.allow()))
		r.AppendHeader(sip.NewHeader("User-Agent", g.cfg.UserAgent))
		setBody(r, body, ctype)
	}
	// No 100rel with a late offer: the callee's offer would come in a
	// reliable 18x, whose answer (in the PRACK) the caller has not given.
	o := &outbound{c: c, d: outd, build: build, se: g.cfg.SessionTimer.Expires, rel: !c.lateOffer}

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
	c.meta = newCallMeta(req, info.Correlation, g.cfg.CorrelationHeaders)
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		c.sess.Close()
		reject(503, "Service Unavailable")
		return
	}
	g.calls[ind.callID], g.calls[outd.callID] = c, c
	g.wg.Add(1)
	registered = true
	g.mu.Unlock()
	g.reg.add(info)
	g.metrics.started()
	// The trunk the call came in on; it leaves on the other.
	g.record(audit.Record{Actor: "sip:" + hostOf(req.Source()), Origin: req.Source(), CallID: c.id, Event: audit.EventSIPCallStarted, Outcome: audit.Success,
		Trunk: in.name})
	g.log.Info("call started", zap.String("call", c.id), zap.String("in", in.name), zap.String("out", out.name))
	c.goCall("watch", c.watch)
	if pool != "" {
		c.runAgents(pool, req, tx, o, uris)
		return
	}
	c.runInvite(req, tx, o, uris)
}

func hostOf(hostport string) string {
	if i := strings.LastIndexByte(hostport, ':'); i > 0 {
		return strings.Trim(hostport[:i], "[]")
	}
	return hostport
}

// runInvite sends the INVITE on the outgoing leg, to one target after
// the other until one answers at all, and carries its responses back
// until the call is answered or failed. The caller gets 503 when no
// target answers.
func (c *call) runInvite(inReq *sip.Request, inTx sip.ServerTransaction, o *outbound, uris []sip.Uri) {
	g := c.g
	ind, outd := c.leg(c.in), c.leg(otherLeg(c.in))
	ctx := context.Background()
	unavailable := func(why string, err error) {
		g.log.Info("no target answered", zap.String("call", c.id), zap.String("trunk", outd.t.name), zap.String("why", why), zap.Error(err))
		_ = inTx.Respond(ind.respond(inReq, 503, "Service Unavailable", nil, ""))
		c.end(ending{outcome: audit.ReasonFailed, trunk: outd.t.name, status: 503})
	}
	dests, err := outd.t.plan(ctx, uris)
	if err != nil {
		unavailable("targets do not resolve", err)
		return
	}
	o.dests = dests
	began := time.Now()
	if !o.start(ctx) {
		unavailable("no target took the INVITE", nil)
		return
	}
	cur, giveUp := o.cur, o.cur.giveUp
	next := func() bool {
		if !o.start(ctx) {
			return false
		}
		cur, giveUp = o.cur, o.cur.giveUp
		return true
	}
	failovers := 0
	keep := false // a 2xx: the transaction ends by itself (Timer M)
	defer func() {
		if !keep && o.cur != nil {
			o.cur.stop()
			o.cur.tx.Terminate()
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
		stopping    bool         // CANCEL sent or to be sent
		stopOutcome audit.Reason // outcome when the call is stopped by us
		stopCode    int          // response for the caller then (0: sipgo sent 487)
		cancelSent  bool
		retried422  bool
	)
	sendCancel := func() {
		if cancelSent || !cur.canCancel() {
			return // RFC 3261 9.1: not before a provisional response
		}
		cancelSent = true
		creq := cancelFor(cur.req)
		g.goQuiet("cancel", c.id, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
			defer cancel()
			_, _ = outd.do(ctx, creq)
		})
	}
	// A panic from here on, the answer included: the caller gets 500
	// (unless it has its final answer), the callee a CANCEL while its
	// INVITE is pending, every confirmed leg a BYE, and the call ends
	// with call.failed. The deferred cleanup above still ends the
	// transaction.
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		g.fault("invite", c.id, v)
		defer func() {
			if v := recover(); v != nil {
				g.log.Error("sip: panic ending a call after a fault; the call may not be ended",
					append([]zap.Field{zap.String("call", c.id)}, panics.Fields(v)...)...)
			}
		}()
		_ = inTx.Respond(ind.respond(inReq, 500, "Server Internal Error", nil, ""))
		c.mu.Lock()
		answered := c.answered
		c.mu.Unlock()
		switch {
		case answered:
			c.bye(-1)
		case keep: // the callee answered, the caller not yet
			c.bye(int(c.in))
		case o.cur != nil:
			sendCancel()
		}
		c.end(ending{outcome: audit.ReasonSIPFault, method: string(sip.INVITE)})
	}()
	// stop stops the call before it is answered; it reports true when
	// the call is finished (nothing came back yet: the destination is
	// abandoned, and what it answers later is cancelled or ended).
	stop := func(outcome audit.Reason, code int) bool {
		if stopping {
			return false
		}
		stopping, stopOutcome, stopCode = true, outcome, code
		if !cur.isResponded() {
			o.abandon(cur)
			o.cur = nil
			c.finishStopped(inReq, inTx, stopOutcome, stopCode)
			return true
		}
		sendCancel()
		return false
	}
	// failover moves on to the next destination after cur failed for
	// reason; false when the call is finished.
	failover := func(reason string) bool {
		failovers++
		g.metrics.failedOver(outd.t.name, reason)
		outd.t.routes.markDown(cur.dest.key(), downFor)
		g.log.Info("target failed; next target", zap.String("call", c.id), zap.String("target", cur.dest.key()), zap.String("reason", reason))
		if stopping {
			o.cur = nil
			c.finishStopped(inReq, inTx, stopOutcome, stopCode)
			return false
		}
		if !next() {
			unavailable("every target failed", nil)
			return false
		}
		return true
	}
	for {
		select {
		case res := <-cur.tx.Responses():
			cur.answered(res)
			runTestFault("invite", sip.INVITE, inReq.CallID().Value())
			switch {
			case res.StatusCode == 100:
				continue
			case res.IsProvisional():
				o.provisional(res)
				if stopping {
					sendCancel()
					continue
				}
				c.provisional(inReq, inTx, res)
			case res.IsSuccess():
				if failovers > 0 {
					g.log.Info("call answered after failover", zap.String("call", c.id), zap.String("target", cur.dest.key()),
						zap.Int("failovers", failovers), zap.Duration("after", time.Since(began)))
				}
				if stopping {
					// The callee answered as we cancelled: RFC 3261 9.1
					// says ACK and BYE it.
					_, acker := o.accept(res)
					acker.send(nil)
					c.bye(int(c.in))
					c.finishStopped(inReq, inTx, stopOutcome, stopCode)
					return
				}
				keep = true
				c.answer(inReq, inTx, o, res)
				return
			case res.StatusCode == 503 && !stopping:
				// RFC 3263 4.3: the server is there but takes nothing
				// now; another may.
				o.cur = nil
				if !failover("unavailable") {
					return
				}
			case res.StatusCode == 422 && minSE(res) > o.se && !stopping && !retried422:
				retried422 = true
				if !o.retry(ctx, minSE(res)) {
					unavailable("422 and the INVITE could not be sent again", nil)
					return
				}
				cur, giveUp = o.cur, o.cur.giveUp
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
		case <-giveUp:
			giveUp = nil
			if cur.isResponded() {
				continue // an answer crossed the timer
			}
			o.abandon(cur)
			o.cur = nil
			if !failover(cur.reason()) {
				return
			}
		case <-cur.tx.Done():
			if stopping {
				o.cur = nil
				c.finishStopped(inReq, inTx, stopOutcome, stopCode)
				return
			}
			if !cur.isResponded() {
				// A transport error or Timer B before any answer.
				cur.stop()
				o.cur = nil
				if !failover("refused") {
					return
				}
				continue
			}
			code, reason := 503, "Service Unavailable"
			if errors.Is(cur.tx.Err(), sip.ErrTransactionTimeout) {
				code, reason = 408, "Request Timeout"
			}
			_ = inTx.Respond(ind.respond(inReq, code, reason, nil, ""))
			c.end(ending{outcome: failureOutcome(code), trunk: outd.t.name})
			return
		case <-cancelled:
			cancelled = nil
			if stop(audit.ReasonCancelled, 0) { // sipgo has answered 487 to the caller
				return
			}
		case reason := <-c.abort:
			code := 503
			if reason == audit.ReasonBye {
				code = 487
			}
			if stop(reason, code) {
				return
			}
		case <-ring.C:
			if stop(audit.ReasonNoAnswer, 408) {
				return
			}
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
		_ = inTx.Respond(c.leg(c.in).respond(inReq, code, reason, nil, ""))
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
	r.SetDestination(inv.Destination())
	r.Laddr = inv.Laddr
	return r
}

// provisional passes a 18x on, with its SDP (early media) turned. With a
// late offer a 18x carries no SDP on: the caller could not answer an
// offer in an unreliable provisional response. When several early
// dialogs answer (forking), the relay takes the media of the one whose
// 18x came last; the 2xx settles it. The 18x goes reliably to a caller
// that asked for 100rel (see prack.go); after the caller has an answer
// reliably, later early answers go to the relay only.
func (c *call) provisional(inReq *sip.Request, inTx sip.ServerTransaction, res *sip.Response) {
	ind, out := c.leg(c.in), otherLeg(c.in)
	tag, _ := res.To().Params.Get("tag")
	var body []byte
	state := StateRinging
	if rs, err := readSession(res); err == nil && rs.sdp != nil && !c.lateOffer {
		c.mu.Lock()
		relAnswered := c.rel.answered
		c.mu.Unlock()
		if relAnswered {
			if err := c.takeAnswer(out, rs.sdp); err == nil {
				state = StateEarly
			}
		} else if b, err := c.turn(out, c.in, rs.sdp, false); err != nil {
			c.g.log.Info("early media SDP refused; 18x passed on without it", zap.String("call", c.id), zap.Error(err))
		} else {
			body, state = b, StateEarly
		}
		if state == StateEarly {
			c.mu.Lock()
			c.earlyTag = tag
			c.mu.Unlock()
		}
	}
	resp := ind.respond(inReq, res.StatusCode, res.Reason, body, "application/sdp")
	copyIdentity(res, resp, ind.t)
	if c.reliable(len(body) > 0) {
		c.sendReliable(resp)
	} else {
		_ = inTx.Respond(resp)
	}
	c.g.reg.update(c.id, func(ci *CallInfo) {
		if ci.State != StateEnded {
			ci.State = state
		}
		c.legInfo(ci)
		li := &ci.Platform
		if out == media.Carrier {
			li = &ci.Carrier
		}
		li.RemoteTag = tag
	})
}

// legInfo copies the legs' tags into the registry entry.
func (c *call) legInfo(ci *CallInfo) {
	for l, d := range c.legPair() {
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

// answer completes the call on a 2xx from the callee (o's current
// destination).
func (c *call) answer(inReq *sip.Request, inTx sip.ServerTransaction, o *outbound, res *sip.Response) {
	g := c.g
	out := otherLeg(c.in)
	ind, outd := c.leg(c.in), c.leg(out)
	f, acker := o.accept(res)
	c.timerAnswered(out, res, o.se)
	if c.lateOffer {
		c.answerLate(inReq, inTx, res, acker)
		return
	}
	acker.send(nil)
	fail := func(code int, text string, outcome audit.Reason, why string, err error) {
		g.log.Info("answer refused", zap.String("call", c.id), zap.String("why", why), zap.Error(err))
		c.bye(int(c.in))
		_ = inTx.Respond(ind.respond(inReq, code, text, nil, ""))
		c.end(ending{outcome: outcome, trunk: outd.t.name, status: res.StatusCode})
	}
	tag, _ := res.To().Params.Get("tag")
	c.mu.Lock()
	relAnswered, early := c.rel.answered, c.earlyTag
	c.mu.Unlock()
	var earlyAnswer []byte
	if f != nil {
		earlyAnswer = f.answer
	}
	rs, err := readSession(res)
	if err != nil {
		g.log.Info("2xx body unreadable", zap.String("call", c.id), zap.Error(err))
	}
	var body []byte
	switch {
	case rs.sdp != nil && relAnswered:
		// The caller has its answer (reliable 18x): this one is the
		// relay's only.
		if err := c.takeAnswer(out, rs.sdp); err != nil {
			fail(488, "Not Acceptable Here", audit.ReasonNotAcceptable, "2xx SDP", err)
			return
		}
	case rs.sdp != nil:
		if body, err = c.turn(out, c.in, rs.sdp, false); err != nil {
			fail(488, "Not Acceptable Here", audit.ReasonNotAcceptable, "2xx SDP", err)
			return
		}
	case earlyAnswer != nil && tag != early:
		// The answer came in an 18x of this dialog, but another early
		// dialog's media is in the relay (forking): take this one's.
		if relAnswered {
			err = c.takeAnswer(out, earlyAnswer)
		} else {
			body, err = c.turn(out, c.in, earlyAnswer, false)
		}
		if err != nil {
			fail(488, "Not Acceptable Here", audit.ReasonNotAcceptable, "early SDP", err)
			return
		}
	case relAnswered:
	default:
		// The answer came in an unreliable 18x (a preview, RFC 3261
		// 13.2.1); send the caller the same again.
		c.mu.Lock()
		body = c.lastSDP[c.in]
		c.mu.Unlock()
		if body == nil {
			fail(502, "Bad Gateway", audit.ReasonFailed, "no SDP in 2xx", nil)
			return
		}
	}
	if !c.awaitPRACK() {
		fail(503, "Service Unavailable", audit.ReasonFailed, "no PRACK for the reliable answer", nil)
		return
	}
	resp := ind.respond(inReq, res.StatusCode, res.Reason, body, "application/sdp")
	copyIdentity(res, resp, ind.t)
	c.timerAnswer(c.in, resp)
	resp.AppendHeader(sip.NewHeader("Supported", supportedTags))
	w := c.expectAck(c.in, inReq.CSeq().SeqNo)
	c.mu.Lock()
	c.answered = true
	c.mu.Unlock()
	if err := inTx.Respond(resp); err != nil {
		// The caller cancelled as the callee answered.
		g.log.Info("2xx to caller failed", zap.String("call", c.id), zap.Error(err))
		c.bye(int(c.in))
		c.end(ending{outcome: audit.ReasonCancelled, trunk: ind.t.name})
		return
	}
	c.timerRestart(c.in)
	now := time.Now()
	g.reg.update(c.id, func(ci *CallInfo) {
		ci.Answer = now
		if ci.State != StateEnded { // a BYE may have come right after the 2xx
			ci.State = StateAnswered
		}
		c.legInfo(ci)
	})
	g.log.Info("call answered", zap.String("call", c.id))
	c.goCall("recording", c.record)
	c.retransmit(c.in, inTx, resp, w, nil)
}

// answerLate completes a late-offer call on a 2xx from the callee: its
// offer goes to the caller in the gateway's 2xx, and the caller's answer,
// in its ACK, to the callee in the gateway's ACK (acker). A 2xx without
// a usable offer, or an ACK without a usable answer, ends the call.
func (c *call) answerLate(inReq *sip.Request, inTx sip.ServerTransaction, res *sip.Response, acker *acker) {
	g := c.g
	ind, outd := c.leg(c.in), c.leg(otherLeg(c.in))
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
	resp := ind.respond(inReq, res.StatusCode, res.Reason, offer, "application/sdp")
	copyIdentity(res, resp, ind.t)
	c.timerAnswer(c.in, resp)
	resp.AppendHeader(sip.NewHeader("Supported", supportedTags))
	w := c.expectAck(c.in, inReq.CSeq().SeqNo)
	c.mu.Lock()
	c.answered = true
	c.mu.Unlock()
	if err := inTx.Respond(resp); err != nil {
		g.log.Info("2xx to caller failed", zap.String("call", c.id), zap.Error(err))
		acker.send(nil)
		c.bye(int(c.in))
		c.end(ending{outcome: audit.ReasonCancelled, trunk: ind.t.name})
		return
	}
	c.timerRestart(c.in)
	now := time.Now()
	g.reg.update(c.id, func(ci *CallInfo) {
		ci.Answer = now
		if ci.State != StateEnded { // a BYE may have come right after the 2xx
			ci.State = StateAnswered
		}
		c.legInfo(ci)
	})
	g.log.Info("call answered (late offer)", zap.String("call", c.id))
	c.goCall("recording", c.record)
	ack := c.retransmit(c.in, inTx, resp, w, func() { acker.send(nil) })
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
